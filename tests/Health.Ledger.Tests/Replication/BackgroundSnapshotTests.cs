using Dapper;
using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Health.Ledger.Merkle;
using Health.Ledger.Replication;
using Health.Ledger.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Health.Ledger.Tests.Replication;

/// <summary>
/// Snapshots are marks, taken without copying the projection; a copy is made only when a member
/// asks for the snapshot's contents, in the background while entries go on being applied, and
/// holds the projection at the mark's Raft index or later.
/// </summary>
public sealed class BackgroundSnapshotTests : IDisposable
{
    private const int CommandsPerBatch = 10;
    private const int Interval = 50;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-snapshots-");
    private readonly WarningCollector logger = new();

    // With a reader holding an old state, SQLite cannot checkpoint the whole write-ahead log into
    // the database file, so the copy is made page by page instead of as a file.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_copy_is_made_only_when_asked_for_and_holds_the_projection_at_the_mark_or_later(bool aReaderHoldsAnOldState)
    {
        using var store = new LedgerStore(Path.Combine(root.FullName, "ledger.db"), []);
        using var oldReader = store.OpenReader();
        using var oldState = oldReader.BeginTransaction(deferred: true);
        if (aReaderHoldsAnOldState)
            Assert.Equal(0, oldReader.QuerySingle<long>("SELECT count(*) FROM entries", transaction: oldState));
        var tree = new MerkleTree(store.ReadLeafHashes);
        var machine = NewMachine(store, tree);
        await using (machine)
        {
            var log = await ApplyBatchesAsync(machine, 4 * Interval);
            await using (log)
            {
                // A mark is skipped while the one before is still being written, so not every
                // interval has one; DotNext is given the one before the newest.
                var next = await AppendUntilAsync(log, 4 * Interval, () => machine.Snapshot?.Index >= Interval, () => $"no mark published; files {string.Join(", ", SnapshotFiles())}");

                // Marks only, so far: nothing was copied.
                var mark = (SnapshotOffer)machine.Snapshot!;
                Assert.Null(mark.Snapshot.File);
                Assert.Contains($"{mark.Index}-1.mark", SnapshotFiles());
                Assert.DoesNotContain(SnapshotFiles(), f => System.Text.RegularExpressions.Regex.IsMatch(f, @"^[0-9]+-[0-9]+$"));

                // A member asks for the contents, as DotNext's leader does when it sends the snapshot:
                // refused until the copy is written, while applying goes on.
                Assert.Throws<SnapshotNotReadyException>(() => ((IDataTransferObject)mark).Length);
                next = await AppendUntilAsync(log, next, () => ((SnapshotOffer)machine.Snapshot!).Snapshot.File is not null, () => "no copy was made", askingFor: machine);
                var copied = (SnapshotOffer)machine.Snapshot!;

                // Members still asking for it keep it the snapshot: newer marks are written, not
                // given to DotNext, which would send them to a copy not yet made.
                var marksBefore = MarkIndices()[^1];
                for (var i = 0; i < 3 * Interval; i++)
                {
                    await AppendAsync(log, ++next);
                    AskForContents(machine);
                }

                next = await AppendUntilAsync(log, next, () => MarkIndices()[^1] > marksBefore + Interval, () => $"no mark after {marksBefore}", askingFor: machine);
                Assert.Same(copied, machine.Snapshot);
                Assert.Empty(logger.Warnings);

                // What a follower is referred to: this member's copy, by length and hash.
                var reference = SnapshotReference.TryDecode(await ((IDataTransferObject)copied).ToByteArrayAsync())!;
                var file = copied.Snapshot.File!;
                Assert.Equal((copied.Index, copied.Term, file.Length), (reference.Index, reference.Term, reference.Length));
                Assert.Equal(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(file.FullName)), reference.Sha256);
                Assert.Equal(file.FullName, machine.FindSnapshot(copied.Index, copied.Term)?.FullName);

                // The copy is one consistent state of the projection, at the mark or later.
                using var copy = new SqliteConnection($"Data Source={file.FullName};Mode=ReadOnly;Pooling=False");
                copy.Open();
                var raftIndex = copy.QuerySingle<long>("SELECT raft_index FROM state");
                Assert.InRange(raftIndex, copied.Index, next);
                var leaves = copy.Query<byte[]>("SELECT leaf FROM entries ORDER BY idx").ToList();
                Assert.Equal(raftIndex * CommandsPerBatch, leaves.Count);
                Assert.Equal(store.ReadLeafHashes().Take(leaves.Count), leaves);
            }
        }
    }

    [Fact]
    public async Task At_start_up_the_newest_mark_is_published_and_a_projection_behind_it_is_restored_from_a_copy_or_reported()
    {
        var path = Path.Combine(root.FullName, "ledger.db");
        long marked;
        int applied;
        using (var store = new LedgerStore(path, []))
        {
            var machine = NewMachine(store, new MerkleTree(store.ReadLeafHashes));
            await using (machine)
            {
                var log = await ApplyBatchesAsync(machine, 4 * Interval);
                await using (log)
                {
                    applied = await AppendUntilAsync(log, 4 * Interval, () => machine.Snapshot?.Index >= Interval, () => "no mark");
                }
            }

            // DotNext is given the mark before the newest: the log keeps the entries after it.
            var marks = MarkIndices();
            Assert.True(marks.Length >= 2, $"marks: {string.Join(", ", marks)}");
            Assert.Equal(marks[^2], machine.Snapshot!.Index);

            // Disposing waited for a mark still being written.
            marked = MarkIndices()[^1];
        }

        // Restarted with its projection: the newest mark is published and the projection kept.
        using (var store = new LedgerStore(path, []))
        {
            var machine = NewMachine(store, new MerkleTree(store.ReadLeafHashes));
            await using (machine)
            {
                Assert.True(await machine.RestoreAsync(CancellationToken.None));
                Assert.Equal(marked, machine.Snapshot?.Index);
                Assert.Equal(applied, store.RaftIndex);
            }
        }

        // The projection lost, marks only: nothing on this node holds the entries the log dropped.
        SqliteConnection.ClearAllPools();
        File.Copy(path, Path.Combine(root.FullName, "kept.db"));
        foreach (var file in Directory.EnumerateFiles(root.FullName, "ledger.db*"))
            File.Delete(file);
        using (var store = new LedgerStore(path, []))
        {
            var machine = NewMachine(store, new MerkleTree(store.ReadLeafHashes));
            await using (machine)
            {
                Assert.False(await machine.RestoreAsync(CancellationToken.None));
                Assert.Null(machine.Snapshot);
            }
        }

        // The projection lost, with a copy at the mark: the copy becomes the projection.
        File.Copy(Path.Combine(root.FullName, "kept.db"), Path.Combine(root.FullName, "snapshots", $"{marked}-1"));
        using (var store = new LedgerStore(path, []))
        {
            var tree = new MerkleTree(store.ReadLeafHashes);
            var machine = NewMachine(store, tree);
            await using (machine)
            {
                Assert.True(await machine.RestoreAsync(CancellationToken.None));
                Assert.Equal(applied, store.RaftIndex);
                Assert.Equal(applied * CommandsPerBatch, tree.Size);
                Assert.NotNull(((SnapshotOffer)machine.Snapshot!).Snapshot.File);
            }
        }
    }

    private LedgerStateMachine NewMachine(LedgerStore store, MerkleTree tree) => SingleNodeApply.StateMachine(root, store, tree, Interval, logger);

    // Restores the state machine, opens its log and applies batches 1 to count through it.
    private async Task<WriteAheadLog> ApplyBatchesAsync(LedgerStateMachine machine, int count)
    {
        var log = await SingleNodeApply.OpenLogAsync(root, machine);
        for (var i = 1; i <= count; i++)
            await AppendAsync(log, i);
        await log.WaitForApplyAsync(count);
        return log;
    }

    private static async Task AppendAsync(WriteAheadLog log, int number)
    {
        var index = await log.AppendAsync(new BinaryLogEntry { Term = 1, Content = Batch(number).Encode() });
        await log.CommitAsync(index);
    }

    // As DotNext's leader does when it sends the snapshot to a member behind the compacted log.
    private static void AskForContents(LedgerStateMachine machine)
    {
        try
        {
            _ = ((IDataTransferObject)machine.Snapshot!).Length;
        }
        catch (SnapshotNotReadyException)
        {
        }
    }

    private long[] MarkIndices() => [.. SnapshotFiles().Where(f => f.EndsWith(".mark", StringComparison.Ordinal)).Select(f => long.Parse(f.Split('-')[0], System.Globalization.CultureInfo.InvariantCulture)).Order()];

    private string[] SnapshotFiles() => [.. Directory.EnumerateFiles(Path.Combine(root.FullName, "snapshots")).Select(f => Path.GetFileName(f)!)];

    // Appends batches after the last one until the awaited state is reached, as a leader's entries
    // go on arriving: a mark still being flushed defers the next, so on a slow disk a fixed number
    // of batches can end before the mark awaited is written. Returns the last batch's number, applied.
    private static async Task<int> AppendUntilAsync(WriteAheadLog log, int last, Func<bool> reached, Func<string> otherwise, LedgerStateMachine? askingFor = null)
    {
        var started = DateTime.UtcNow;
        await log.WaitForApplyAsync(last);
        while (!reached())
        {
            Assert.True(DateTime.UtcNow - started < Patience, otherwise());
            await AppendAsync(log, ++last);
            if (askingFor is not null)
                AskForContents(askingFor);
            await log.WaitForApplyAsync(last);
            await Task.Delay(10);
        }

        return last;
    }

    private static CommandBatch Batch(int number) => new(
        Guid.NewGuid(),
        1_700_000_000_000 + number,
        [.. Enumerable.Range(0, CommandsPerBatch).Select(c => SingleNodeApply.Note($"batch {number} command {c}"))]);

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
