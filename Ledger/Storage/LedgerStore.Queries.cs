using Dapper;
using Health.Ledger.Entries;

namespace Health.Ledger.Storage;

public sealed partial class LedgerStore
{
    /// <summary>The entry at a 1-based index, or null past the end.</summary>
    public LedgerEntry? ReadEntry(long index)
    {
        using var connection = OpenReader();
        var body = connection.QuerySingleOrDefault<byte[]>("SELECT body FROM entries WHERE idx = @index", new { index });
        return body is null ? null : LedgerEntry.FromCanonicalBytes(body);
    }

    /// <summary>Canonical bytes of up to <paramref name="count"/> entries from <paramref name="from"/> on, in order.</summary>
    public IReadOnlyList<byte[]> ReadEntryBytes(long from, int count)
    {
        using var connection = OpenReader();
        return connection.Query<byte[]>(
            "SELECT body FROM entries WHERE idx >= @from ORDER BY idx LIMIT @count", new { from, count }).AsList();
    }

    /// <summary>The ledger index of the first checkpoint covering tree size <paramref name="minTreeSize"/> or more.</summary>
    public long? FindCheckpointCovering(long minTreeSize)
    {
        using var connection = OpenReader();
        return connection.QuerySingleOrDefault<long?>(
            "SELECT idx FROM checkpoints WHERE tree_size >= @minTreeSize ORDER BY tree_size LIMIT 1", new { minTreeSize });
    }

    /// <summary>The ledger index of the newest checkpoint, or null.</summary>
    public long? FindLatestCheckpoint()
    {
        using var connection = OpenReader();
        return connection.QuerySingleOrDefault<long?>("SELECT idx FROM checkpoints ORDER BY tree_size DESC LIMIT 1");
    }

    /// <summary>Membership changes recorded on the ledger: members added (with their addresses) and ids removed.</summary>
    public (IReadOnlyList<(string NodeId, string RaftEndPoint, string HttpUrl)> Added, IReadOnlySet<string> Removed) ReadMembershipChanges()
    {
        using var connection = OpenReader();
        var rows = connection.Query<(string NodeId, string Raft, string Http, bool Removed)>("SELECT node_id, raft, http, removed FROM members").AsList();
        return (rows.Where(r => !r.Removed).Select(r => (r.NodeId, r.Raft, r.Http)).ToList(),
            rows.Where(r => r.Removed).Select(r => r.NodeId).ToHashSet(StringComparer.Ordinal));
    }
}
