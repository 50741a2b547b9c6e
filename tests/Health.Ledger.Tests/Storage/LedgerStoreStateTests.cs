using Dapper;
using Health.Ledger.Entries;
using Health.Ledger.Storage;
using Microsoft.Data.Sqlite;

namespace Health.Ledger.Tests.Storage;

/// <summary>The Raft index and last timestamp the projection records, as a restarted node reads them.</summary>
public sealed class LedgerStoreStateTests : IDisposable
{
    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-state-");

    [Fact]
    public void A_duplicate_batch_advances_the_Raft_index_and_keeps_the_last_timestamp_and_the_entries()
    {
        var path = Path.Combine(root.FullName, "ledger.db");
        var batchId = Guid.NewGuid();
        using (var store = new LedgerStore(path, []))
        {
            var entry = new LedgerEntry(1, 1_700_000_000_123, LedgerEntry.GenesisHash, "OperatorNote", new Dictionary<string, string> { ["note"] = "once" });
            store.ApplyBatch(5, batchId, [(entry, entry.ToCanonicalBytes(), entry.LeafHash())], []);
            Assert.Equal((1L, 1), store.FindBatchWhileApplying(batchId));

            store.AdvanceRaftIndex(9);
            Assert.Equal((9L, 1_700_000_000_123L), (store.RaftIndex, store.LastTimestamp));
        }

        SqliteConnection.ClearAllPools();
        using var reopened = new LedgerStore(path, []);
        Assert.Equal((9L, 1_700_000_000_123L), (reopened.RaftIndex, reopened.LastTimestamp));
        using var connection = reopened.OpenReader();
        Assert.Equal(1, connection.QuerySingle<long>("SELECT count(*) FROM entries"));
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        root.Delete(recursive: true);
    }
}
