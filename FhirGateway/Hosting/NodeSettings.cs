using Health.Ledger.Replication;

namespace Health.FhirGateway.Hosting;

/// <summary>What a provider node needs to start.</summary>
/// <param name="NodeId">This node's id.</param>
/// <param name="HttpUrl">Where the node's HTTP API listens.</param>
/// <param name="DataDirectory">The node's data directory.</param>
/// <param name="Members">Every voting member, this node included.</param>
public sealed record NodeSettings(string NodeId, Uri HttpUrl, string DataDirectory, IReadOnlyList<LedgerMember> Members)
{
    /// <summary>Raft entries between snapshots (which compact the write-ahead log).</summary>
    public long SnapshotInterval { get; init; } = 2048;

    /// <summary>
    /// The shortest election timeout in milliseconds: elections draw theirs from it to twice it, and
    /// Raft requests time out at four fifths of it.
    /// </summary>
    public int ElectionTimeout { get; init; } = 1000;

    /// <summary>The consortium's shared pseudonym key file; every member must use the same key.</summary>
    public string? PseudonymKeyFile { get; init; }

    /// <summary>The dev token issuer's key file (demo and tests); made on first start when missing.</summary>
    public string? DevIssuerKeyFile { get; init; }

    /// <summary>Requests a second one client may make to /fhir and /portal (bursts of as many); 0 turns the limit off.</summary>
    public int RateLimitPerSecond { get; init; } = 5000;

    /// <summary>Whether logs are JSON objects, one per line, instead of plain lines.</summary>
    public bool JsonLogs { get; init; }

    /// <summary>Whether the node joins a running group and waits to be added.</summary>
    public bool Join { get; init; }

    /// <summary>The node's consortium certificate and key and the consortium CA; null runs without TLS (development only).</summary>
    public Health.Ledger.Security.ConsortiumIdentity? Identity { get; init; }

    /// <summary>The ledger's options for this node.</summary>
    public LedgerNodeOptions ToLedgerOptions() => new()
    {
        NodeId = NodeId,
        Members = Members,
        DataDirectory = Path.Combine(DataDirectory, "ledger"),
        SnapshotInterval = SnapshotInterval,
        LowerElectionTimeout = ElectionTimeout,
        UpperElectionTimeout = 2 * ElectionTimeout,
        Join = Join,
        Identity = Identity,
    };

    /// <summary>
    /// Three members on loopback: node1..node3 with HTTP on <paramref name="httpBasePort"/>+i and
    /// Raft on <paramref name="raftBasePort"/>+i.
    /// </summary>
    public static IReadOnlyList<LedgerMember> LoopbackTrio(int httpBasePort, int raftBasePort, string scheme = "http") =>
        Enumerable.Range(1, 3)
            .Select(i => LedgerMember.Parse($"node{i}=127.0.0.1:{raftBasePort + i}={scheme}://127.0.0.1:{httpBasePort + i}"))
            .ToList();
}
