using Dapper;
using Health.Ledger.Entries;
using Health.Ledger.Merkle;
using Health.Ledger.Storage;
using Health.Ledger.Tests.Replication;
using Microsoft.Data.Sqlite;

namespace Health.Ledger.Tests.Storage;

/// <summary>
/// A snapshot install replaces the projection file while the node serves reads from it; every read
/// must see one whole projection, the old or the new.
/// </summary>
public sealed class ProjectionReplacementTests : IDisposable
{
    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-replace-");

    [Fact]
    public async Task Reads_see_one_whole_projection_and_writes_after_a_replacement_stay_while_it_is_replaced_again_and_again()
    {
        var (small, smallCount) = await CopyOfLedgerAsync("small", 40);
        var (large, largeCount) = await CopyOfLedgerAsync("large", 400);
        var live = Path.Combine(root.FullName, "live.db");
        long expected;
        using (var store = new LedgerStore(live, []))
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            long[] counts = [0, smallCount, smallCount + WrittenAfter, largeCount, largeCount + WrittenAfter];
            var readers = Enumerable.Range(0, 3).Select(_ => Task.Run(() => ReadUntilCancelled(store, counts, stop.Token))).ToArray();
            for (var round = 0; round < 60; round++)
            {
                var copy = Path.Combine(root.FullName, $"copy-{round}.db");
                File.Copy(round % 2 == 0 ? small : large, copy);
                using (var excluded = store.TryExcludeReaders(TimeSpan.FromSeconds(10)))
                {
                    Assert.NotNull(excluded);
                    store.ReplaceWithMoved(copy, excluded);
                }

                WriteEntries(store, round % 2 == 0 ? smallCount : largeCount);
                await Task.Delay(5);
            }

            await stop.CancelAsync();
            var reads = await Task.WhenAll(readers);
            Assert.All(reads, count => Assert.True(count > 60, $"a reader made only {count} reads"));
            expected = largeCount + WrittenAfter;
        }

        SqliteConnection.ClearAllPools();
        using var reopened = new LedgerStore(live, []);
        Assert.Null(reopened.SetAsideAs);
        using var connection = reopened.OpenReader();
        Assert.Equal(expected, connection.QuerySingle<long>("SELECT count(*) FROM entries"));
    }

    private const int WrittenAfter = 5;

    // Entries applied on top of a projection just installed, as the log goes on after a snapshot.
    private static void WriteEntries(LedgerStore store, long treeSize)
    {
        var entries = Enumerable.Range(1, WrittenAfter).Select(i =>
        {
            var entry = new LedgerEntry(treeSize + i, 1_700_000_000_000 + i, MerkleHash.Empty, "OperatorNote", new Dictionary<string, string> { ["note"] = $"after {i}" });
            return (entry, entry.ToCanonicalBytes(), entry.LeafHash());
        }).ToList();
        store.ApplyBatch(store.RaftIndex + 1, Guid.NewGuid(), entries, []);
    }

    [Fact]
    public async Task A_kept_query_after_a_replacement_reads_the_new_projection()
    {
        var (small, smallCount) = await CopyOfLedgerAsync("small", 40);
        using var store = new LedgerStore(Path.Combine(root.FullName, "ledger.db"), []);
        long Count() => store.Query(kept => kept.Scalar<long>("SELECT count(*) FROM entries"));
        Assert.Equal(0, Count());

        using (var excluded = store.TryExcludeReaders(TimeSpan.FromSeconds(10)))
        {
            Assert.NotNull(excluded);
            store.ReplaceWithMoved(small, excluded);
        }

        Assert.Equal(smallCount, Count());
    }

    [Fact]
    public async Task Replacing_waits_for_open_readers_and_holds_new_ones_off_until_it_is_done()
    {
        using var store = new LedgerStore(Path.Combine(root.FullName, "ledger.db"), []);
        var open = store.OpenReader();
        Assert.Null(store.TryExcludeReaders(TimeSpan.FromMilliseconds(50)));
        Assert.Equal(0, open.QuerySingle<long>("SELECT count(*) FROM entries"));
        open.Dispose();

        var excluded = store.TryExcludeReaders(TimeSpan.FromSeconds(10));
        Assert.NotNull(excluded);
        var waiting = Task.Run(() =>
        {
            using var reader = store.OpenReader();
            return reader.QuerySingle<long>("SELECT count(*) FROM entries");
        });
        Assert.NotSame(waiting, await Task.WhenAny(waiting, Task.Delay(200)));
        excluded.Dispose();
        Assert.Equal(0, await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_query_inside_a_query_goes_on_while_a_replacement_waits_for_the_first()
    {
        using var store = new LedgerStore(Path.Combine(root.FullName, "ledger.db"), []);
        long Count()
        {
            using var reader = store.OpenReader();
            return reader.QuerySingle<long>("SELECT count(*) FROM entries");
        }

        var outer = store.OpenReader();
        var exclusion = Task.Run(() => store.TryExcludeReaders(TimeSpan.FromSeconds(30)));

        // Once the replacement waits, a reader of another flow waits too (until then it gets in).
        Task<long> other;
        do
        {
            using (ExecutionContext.SuppressFlow())
                other = Task.Run(Count);
        }
        while (await Task.WhenAny(other, Task.Delay(100)) == other && !exclusion.IsCompleted);

        // The reader inside the open read (its flow holds that connection) gets in.
        Assert.Equal(0, await Task.Run(Count).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(exclusion.IsCompleted);
        outer.Dispose();

        using (var excluded = await exclusion.WaitAsync(TimeSpan.FromSeconds(10)))
        {
            Assert.NotNull(excluded);
            Assert.False(other.IsCompleted);
        }

        Assert.Equal(0, await other.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    // Each read checks that the entry count and the Raft index belong to one of the projections.
    private static int ReadUntilCancelled(LedgerStore store, long[] counts, CancellationToken token)
    {
        var reads = 0;
        while (!token.IsCancellationRequested && reads < 100_000)
        {
            using var connection = store.OpenReader();
            using var transaction = connection.BeginTransaction(deferred: true);
            var count = connection.QuerySingle<long>("SELECT count(*) FROM entries", transaction: transaction);
            var leaves = connection.Query<byte[]>("SELECT leaf FROM entries ORDER BY idx", transaction: transaction).Count();
            Assert.Contains(count, counts);
            Assert.Equal(count, leaves);

            // A kept connection (statements compiled once) must not outlive the file it was opened on.
            Assert.Contains(store.Query(kept => kept.Scalar<long>("SELECT count(*) FROM entries")), counts);
            reads++;
        }

        return reads;
    }

    private async Task<(string File, long Count)> CopyOfLedgerAsync(string name, int entries)
    {
        var folder = root.CreateSubdirectory(name);
        using var store = new LedgerStore(Path.Combine(folder.FullName, "ledger.db"), []);
        var tree = new MerkleTree(store.ReadLeafHashes);
        await SingleNodeApply.ApplyAsync(folder, store, tree, [.. Enumerable.Range(0, entries).Select(i => SingleNodeApply.Note($"{name} {i}"))]);
        var file = Path.Combine(root.FullName, $"{name}.db");
        using (var copy = store.BeginCopy())
            copy.WriteTo(file);
        return (file, tree.Size);
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        root.Delete(recursive: true);
    }
}
