using Dapper;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Health.Ledger.Entries;
using Health.Ledger.Merkle;
using Health.Ledger.Replication;
using Health.Ledger.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Health.Ledger.Tests.Replication;

/// <summary>
/// Snapshots are copied from the projection in the background while entries go on being applied;
/// each must still be the projection exactly at the Raft index it is named after.
/// </summary>
public sealed class BackgroundSnapshotTests : IDisposable
{
    private const int CommandsPerBatch = 10;
    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-snapshots-");
    private readonly WarningCollector logger = new();

    // With a reader holding an old state, SQLite cannot checkpoint the whole write-ahead log into
    // the database file, so the snapshot is copied page by page instead of as a file.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Every_snapshot_holds_the_projection_at_its_own_Raft_index_while_applying_goes_on(bool aReaderHoldsAnOldState)
    {
        using var store = new LedgerStore(Path.Combine(root.FullName, "ledger.db"), []);
        using var oldReader = store.OpenReader();
        using var oldState = oldReader.BeginTransaction(deferred: true);
        if (aReaderHoldsAnOldState)
            Assert.Equal(0, oldReader.QuerySingle<long>("SELECT count(*) FROM entries", transaction: oldState));
        var tree = new MerkleTree(store.ReadLeafHashes);
        var snapshots = root.CreateSubdirectory("snapshots");
        var machine = new LedgerStateMachine(snapshots, store, tree, snapshotInterval: 50, SingleNodeApply.Transfer(snapshots), logger);
        await using (machine)
        {
            await machine.RestoreAsync(CancellationToken.None);
            var log = new WriteAheadLog(new WriteAheadLog.Options { Location = Path.Combine(root.FullName, "raft") }, machine);
            await using (log)
            {
                var seen = new Dictionary<long, string>();
                for (var i = 1; i <= 400; i++)
                {
                    await log.AppendAsync(new BinaryLogEntry { Term = 1, Content = Batch(i).Encode() });
                    await log.CommitAsync(i);
                    if (machine.Snapshot is { } taken)
                        seen[taken.Index] = ((SnapshotOffer)taken).Snapshot.File.FullName;
                }

                await log.WaitForApplyAsync(400);
                await machine.DisposeAsync(); // waits for a snapshot still being written
                if (machine.Snapshot is { } last)
                    seen[last.Index] = ((SnapshotOffer)last).Snapshot.File.FullName;

                Assert.Empty(logger.Warnings);
                Assert.NotEmpty(seen);
                var leaves = store.ReadLeafHashes().ToList();
                foreach (var (index, file) in seen.Where(s => File.Exists(s.Value)))
                {
                    using var copy = new SqliteConnection($"Data Source={file};Mode=ReadOnly;Pooling=False");
                    copy.Open();
                    Assert.Equal(index, copy.QuerySingle<long>("SELECT raft_index FROM state"));
                    var copied = copy.Query<byte[]>("SELECT leaf FROM entries ORDER BY idx").ToList();
                    Assert.Equal(index * CommandsPerBatch, copied.Count);
                    Assert.Equal(leaves.Take(copied.Count), copied);
                }

                Assert.True(machine.Snapshot!.Index > 50, $"only the first snapshot was taken (at {machine.Snapshot.Index}); applied {machine.AppliedRaftIndex}, tree {tree.Size}, store {store.RaftIndex}, files {string.Join(",", Directory.EnumerateFiles(Path.Combine(root.FullName, "snapshots")).Select(Path.GetFileName))}");
            }
        }
    }

    private static CommandBatch Batch(int number) => new(
        Guid.NewGuid(),
        1_700_000_000_000 + number,
        [.. Enumerable.Range(0, CommandsPerBatch).Select(c => new LedgerCommand("OperatorNote", new Dictionary<string, string> { ["note"] = $"batch {number} command {c}" }))]);

    private sealed class WarningCollector : ILogger
    {
        public List<string> Warnings { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                lock (Warnings)
                    Warnings.Add($"{formatter(state, exception)} {exception}");
            }
        }
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        root.Delete(recursive: true);
    }
}
