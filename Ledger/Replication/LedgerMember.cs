using System.Net;

namespace Health.Ledger.Replication;

/// <summary>A voting member of the ledger's Raft group.</summary>
/// <param name="NodeId">Stable node name, for example <c>node1</c>.</param>
/// <param name="RaftEndPoint">Where the member's Raft transport listens.</param>
/// <param name="HttpUrl">The member's HTTP base URL (followers forward appends there).</param>
public sealed record LedgerMember(string NodeId, IPEndPoint RaftEndPoint, Uri HttpUrl)
{
    /// <summary>Parses <c>id=host:raftPort=httpUrl</c>, the form used on the command line and in config.</summary>
    /// <exception cref="FormatException">The text is not of that form.</exception>
    public static LedgerMember Parse(string text)
    {
        var parts = text.Split('=', 3);
        if (parts.Length != 3 || parts[0].Length == 0
            || !IPEndPoint.TryParse(parts[1], out var raft) || raft.Port == 0
            || !Uri.TryCreate(parts[2], UriKind.Absolute, out var http))
            throw new FormatException($"A member is written id=ip:raftPort=httpUrl, not '{text}'.");
        return new LedgerMember(parts[0], raft, http);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{NodeId}={RaftEndPoint}={HttpUrl}";
}
