namespace Health.Ledger.Replication;

/// <summary>Settings of one ledger node.</summary>
public sealed record LedgerNodeOptions
{
    /// <summary>This node's id; must be one of <see cref="Members"/>.</summary>
    public required string NodeId { get; init; }

    /// <summary>Every voting member, this node included.</summary>
    public required IReadOnlyList<LedgerMember> Members { get; init; }

    /// <summary>
    /// Whether this node joins a running group: it starts without a Raft configuration and serves
    /// once a member adds it (<see cref="LedgerNode.AddMemberAsync"/>).
    /// </summary>
    public bool Join { get; init; }

    /// <summary>Directory holding the write-ahead log, snapshots, the projection and the node key.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>
    /// Lower bound of the randomised election timeout, in milliseconds. Raft requests time out a
    /// fifth earlier than this, so a candidate counts a member that accepts connections but does not
    /// answer (a hung process) as unavailable before it gives up its election.
    /// </summary>
    public int LowerElectionTimeout { get; init; } = 1000;

    /// <summary>Upper bound of the randomised election timeout, in milliseconds.</summary>
    public int UpperElectionTimeout { get; init; } = 2000;

    /// <summary>How long a Raft request to another member may take: shorter than any election timeout.</summary>
    internal TimeSpan RaftRequestTimeout => TimeSpan.FromMilliseconds(LowerElectionTimeout * 4 / 5);

    /// <summary>A snapshot is taken after this many Raft entries, letting the write-ahead log be compacted.</summary>
    public long SnapshotInterval { get; init; } = 2048;

    /// <summary>The leader signs a checkpoint after this many new entries...</summary>
    public long CheckpointEveryEntries { get; init; } = 1000;

    /// <summary>...or after this long, when anything new was appended.</summary>
    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long an append may take, retries included, before it fails.</summary>
    public TimeSpan AppendTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Most commands in one Raft entry.</summary>
    public int MaxBatchCommands { get; init; } = 1024;

    /// <summary>
    /// Most batches being replicated at once from this node. One was the fastest at every load
    /// measured but two clients, where more gained a sixth (docs/PERFORMANCE.md): commands that
    /// arrive while a batch replicates leave together in the next, so fewer and larger Raft entries
    /// carry them, each paying one round of flushes.
    /// </summary>
    /// <remarks>
    /// A batch counts until it is committed: while this node applies it, the next batch replicates.
    /// </remarks>
    public int MaxBatchesInFlight { get; init; } = 1;

    /// <summary>The clock the leader stamps entries with.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>The node's consortium certificate and CA; when set, Raft and member-to-member HTTP are mutual TLS.</summary>
    public Security.ConsortiumIdentity? Identity { get; init; }

    /// <summary>This node's member record.</summary>
    public LedgerMember Self => Members.Single(m => m.NodeId == NodeId);
}
