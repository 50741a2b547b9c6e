using System.Buffers.Binary;
using DotNext.IO.Log;
using DotNext.Net.Cluster;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using DotNext.IO;
using Health.Ledger.Replication;
using Microsoft.Extensions.Logging.Abstractions;

namespace Health.Ledger.Tests.Replication;

/// <summary>
/// The follower path of the Raft log: what a node killed right after acknowledging entries would
/// restart with is DotNext's checkpoint file, which must name exactly the acknowledged tail.
/// </summary>
public sealed class DurableWriteAheadLogTests : IDisposable
{
    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-wal-");

    [Fact]
    public async Task Appended_entries_are_flushed_before_the_follower_acknowledges_them()
    {
        await using var log = Open();
        IAuditTrail<IRaftLogEntry> follower = log;

        await follower.AppendAsync(Entries(term: 1, count: 4_000), startIndex: 1, skipCommitted: true, CancellationToken.None);

        Assert.Equal(4_000, CheckpointLastIndex());
        Assert.True(log.IsFlushedThrough(4_000));
    }

    [Fact]
    public async Task Entries_replaced_by_a_new_leader_are_acknowledged_only_once_the_checkpoint_names_the_shorter_tail()
    {
        await using var log = Open();
        IAuditTrail<IRaftLogEntry> follower = log;
        await follower.AppendAsync(Entries(term: 1, count: 4_000), startIndex: 1, skipCommitted: true, CancellationToken.None);

        // A leader of term 2 replaces entries 5 to 4,000 with 3,000 of its own: megabytes to write
        // out, so a follower that answered before its flusher did would be caught here.
        await follower.AppendAsync(Entries(term: 2, count: 3_000), startIndex: 5, skipCommitted: true, CancellationToken.None);

        // Were the checkpoint still to say 4,000, a node killed now would restart with term-1
        // entries after the acknowledged term-2 ones, and vote as if its last term were 1.
        Assert.Equal(3_004, log.LastEntryIndex);
        Assert.Equal(3_004, CheckpointLastIndex());
        Assert.True(log.IsFlushedThrough(3_004));
    }

    [Fact]
    public async Task A_log_that_refuses_votes_grants_none_and_grants_again_as_DotNext_would_once_allowed()
    {
        await using var log = Open();
        IPersistentState state = log;
        var (first, second) = (ClusterMemberId.FromEndPoint(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 1)),
            ClusterMemberId.FromEndPoint(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 2)));

        log.RefusesVotes = true;
        Assert.False(state.IsVotedFor(first));

        log.RefusesVotes = false;
        Assert.True(state.IsVotedFor(first));
        await state.UpdateVotedForAsync(first);
        Assert.True(state.IsVotedFor(first));
        Assert.False(state.IsVotedFor(second));
    }

    [Fact]
    public async Task The_term_of_the_newest_entry_is_read_from_the_log()
    {
        await using var log = Open();
        IAuditTrail<IRaftLogEntry> follower = log;
        Assert.Equal(0, await log.LastEntryTermAsync(CancellationToken.None));

        await follower.AppendAsync(Entries(term: 3, count: 2), startIndex: 1, skipCommitted: true, CancellationToken.None);
        Assert.Equal(3, await log.LastEntryTermAsync(CancellationToken.None));

        await follower.AppendAsync(Entries(term: 4, count: 1), startIndex: 3, skipCommitted: true, CancellationToken.None);
        Assert.Equal(4, await log.LastEntryTermAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_leader_reads_entry_contents_for_a_follower_in_bounded_pieces_and_metadata_whole()
    {
        await using var log = Open();
        IAuditTrail<IRaftLogEntry> raft = log;
        await raft.AppendAsync(Entries(term: 1, count: 3_000), startIndex: 1, skipCommitted: true, CancellationToken.None);

        // As DotNext's replication reads them (through the interface): 3,000 entries of 4 KiB are 12 MiB.
        var first = await raft.ReadAsync(new EntriesRead(metadataOnly: false), 1, 3_000, CancellationToken.None);
        Assert.Equal(DurableWriteAheadLog.MaxBytesPerRead / 4_096, first.Count);
        Assert.Equal(4_096, first.Bytes / first.Count);
        var rest = await raft.ReadAsync(new EntriesRead(metadataOnly: false), 1 + first.Count, 3_000, CancellationToken.None);
        Assert.Equal(first.Count, rest.Count);

        Assert.Equal(3_000, (await raft.ReadAsync(new EntriesRead(metadataOnly: true), 1, 3_000, CancellationToken.None)).Count);
    }

    [Theory]
    [InlineData(HeartbeatResult.Rejected, 5, HeartbeatResult.Replicated)] // holds the snapshot already: its answer to the install was lost
    [InlineData(HeartbeatResult.Rejected, 4, HeartbeatResult.Replicated)] // the same, from a follower that missed a term
    [InlineData(HeartbeatResult.Rejected, 6, HeartbeatResult.Rejected)] // a higher term: the leader must learn it
    [InlineData(HeartbeatResult.ReplicatedWithLeaderTerm, 5, HeartbeatResult.ReplicatedWithLeaderTerm)]
    [InlineData(HeartbeatResult.UnsupportedVersion, 5, HeartbeatResult.UnsupportedVersion)]
    public async Task A_follower_that_refuses_a_snapshot_it_holds_counts_as_having_it(HeartbeatResult answer, long followerTerm, HeartbeatResult seen)
    {
        await using var log = Open(new HoldsSnapshot(index: 10, term: 2));
        await ((IPersistentState)log).UpdateTermAsync(5, resetLastVote: true, CancellationToken.None);
        IAuditTrail<IRaftLogEntry> raft = log;

        // As DotNext's leader reads for a follower whose next index is at or below the snapshot.
        var read = await raft.ReadAsync(new Follower(answer, followerTerm), 7, 10, CancellationToken.None);

        Assert.Equal(10, read.Value.LastIndex);
        Assert.Equal(followerTerm, read.Term);
        Assert.Equal(seen, read.Value.Result);
    }

    [Fact]
    public async Task A_follower_that_refuses_entries_still_counts_as_lacking_them()
    {
        await using var log = Open();
        await ((IPersistentState)log).UpdateTermAsync(5, resetLastVote: true, CancellationToken.None);
        IAuditTrail<IRaftLogEntry> raft = log;
        await raft.AppendAsync(Entries(term: 5, count: 3), startIndex: 1, skipCommitted: true, CancellationToken.None);

        var read = await raft.ReadAsync(new Follower(HeartbeatResult.Rejected, 5), 2, 3, CancellationToken.None);

        Assert.Equal(HeartbeatResult.Rejected, read.Value.Result);
    }

    [Fact]
    public async Task A_snapshot_installed_right_after_a_commit_leaves_the_log_working()
    {
        // The flusher's round after a commit and the install meet by timing: several tries.
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var token = timeout.Token;
        for (var attempt = 0; attempt < 8; attempt++)
        {
            await using var log = Open(new InstallsSlowly(), root.CreateSubdirectory($"attempt-{attempt}"));
            IAuditTrail<IRaftLogEntry> follower = log;
            await follower.AppendAsync(Entries(term: 1, count: 100), startIndex: 1, skipCommitted: true, token);

            // As DotNext's follower: a commit (whose checkpoint the flusher writes next), then at
            // once the leader's snapshot, far past the log's last page; the thread pool is busy, as a
            // loaded node's is, so the flusher's round tends to start after the install began.
            var busy = BusyThreadPool(TimeSpan.FromMilliseconds(50));
            await log.CommitAsync(50, token);
            await follower.AppendAsync(new SnapshotEntry(index: 2_048, term: 1), 2_048, token);
            await busy;
            Assert.Equal(2_048, log.LastCommittedEntryIndex);

            await follower.AppendAsync(Entries(term: 1, count: 10), startIndex: 2_049, skipCommitted: true, token);
            await log.CommitAsync(2_058, token);
            Assert.Equal(1, (await follower.ReadAsync(new EntriesRead(metadataOnly: true), 2_058, 2_058, token)).Count);
        }
    }

    [Fact]
    public async Task A_log_whose_flusher_failed_says_so()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var token = timeout.Token;
        await using var log = Open(new InstallsSlowly());
        IAuditTrail<IRaftLogEntry> follower = log;
        await follower.AppendAsync(Entries(term: 1, count: 100), startIndex: 1, skipCommitted: true, token);
        Assert.Null(log.Failure);

        // DotNext's own install, without waiting for its flusher (the race above), until it fails.
        // An install that did not fail leaves the log at its snapshot, committed through it: each
        // later attempt first appends entries past it, so that its commit gives the flusher work.
        for (var attempt = 0; attempt < 20 && log.Failure is null; attempt++)
        {
            if (attempt > 0)
                await follower.AppendAsync(Entries(term: 1, count: 10), startIndex: log.LastEntryIndex + 1, skipCommitted: true, token);
            var busy = BusyThreadPool(TimeSpan.FromMilliseconds(50));
            await log.CommitAsync(log.LastCommittedEntryIndex + 1, token);
            await log.AppendAsync(new SnapshotEntry(index: 2_048 * (attempt + 1), term: 1), 2_048 * (attempt + 1), token);
            await busy;
            await WaitForFlusherRoundAsync(log, token);
        }

        Assert.Contains("doesn't exist on the disk", log.Failure?.Message, StringComparison.Ordinal);
        await Assert.ThrowsAnyAsync<Exception>(() => follower.AppendAsync(Entries(term: 1, count: 1), log.LastEntryIndex + 1, true, token).AsTask());
    }

    // The flusher's round after the install has ended, or failed.
    private static async Task WaitForFlusherRoundAsync(DurableWriteAheadLog log, CancellationToken token)
    {
        try
        {
            await log.FlushAsync(token);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
        }
    }

    // Every thread of the pool but the caller's spins for the period; returns once they all spin.
    private static Task BusyThreadPool(TimeSpan period)
    {
        var threads = ThreadPool.ThreadCount;
        var started = 0;
        var spinning = Enumerable.Range(0, threads).Select(_ => Task.Run(() =>
        {
            Interlocked.Increment(ref started);
            var until = Environment.TickCount64 + (long)period.TotalMilliseconds;
            while (Environment.TickCount64 < until)
                Thread.SpinWait(100);
        })).ToArray();
        SpinWait.SpinUntil(() => Volatile.Read(ref started) >= threads - 1, TimeSpan.FromSeconds(1));
        return Task.WhenAll(spinning);
    }

    private DurableWriteAheadLog Open(IStateMachine? stateMachine = null, DirectoryInfo? location = null)
        => new(new WriteAheadLog.Options { Location = (location ?? root).FullName, ChunkSize = 1 << 20 }, stateMachine ?? new AppliesNothing(), NullLogger.Instance);

    // Entries of 4 KiB, filled with their term.
    private static LogEntryProducer<BinaryLogEntry> Entries(long term, int count)
    {
        var content = Enumerable.Repeat((byte)term, 4_096).ToArray();
        return new(Enumerable.Range(0, count).Select(_ => new BinaryLogEntry { Term = term, Content = content }).ToList());
    }

    // DotNext's checkpoint file, version 1: format version (uint32), commit index, last index (int64, little-endian).
    private long CheckpointLastIndex()
    {
        using var file = File.OpenHandle(Path.Combine(root.FullName, "checkpoint"), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        Span<byte> buffer = stackalloc byte[20];
        Assert.Equal(buffer.Length, RandomAccess.Read(file, buffer, 0));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(buffer));
        return BinaryPrimitives.ReadInt64LittleEndian(buffer[12..]);
    }

    public void Dispose() => root.Delete(recursive: true);

    // Counts the entries a read hands over and the bytes of their contents.
    private sealed class EntriesRead(bool metadataOnly) : ILogEntryConsumer<IRaftLogEntry, (int Count, long Bytes)>
    {
        public bool LogEntryMetadataOnly => metadataOnly;

        public ValueTask<(int Count, long Bytes)> ReadAsync<TEntry, TList>(TList entries, long? snapshotIndex, CancellationToken token)
            where TEntry : IRaftLogEntry
            where TList : IReadOnlyList<TEntry>
            => ValueTask.FromResult((entries.Count, entries.Sum(e => e.Length ?? 0)));
    }

    // Answers every read as a follower would, with the given result and term, and the snapshot's index when it was sent one.
    private sealed class Follower(HeartbeatResult answer, long term) : ILogEntryConsumer<IRaftLogEntry, Result<ReplicationStatus>>
    {
        public bool LogEntryMetadataOnly => false;

        public ValueTask<Result<ReplicationStatus>> ReadAsync<TEntry, TList>(TList entries, long? snapshotIndex, CancellationToken token)
            where TEntry : IRaftLogEntry
            where TList : IReadOnlyList<TEntry>
            => ValueTask.FromResult(new Result<ReplicationStatus>
            {
                Term = term,
                Value = new ReplicationStatus { Result = answer, LastIndex = snapshotIndex ?? -1 },
            });
    }

    // Installs snapshots as the ledger's state machine does when a download has just finished:
    // after a moment, inside DotNext's lock.
    private sealed class InstallsSlowly : IStateMachine
    {
        public ISnapshot? Snapshot { get; private set; }

        public async ValueTask<long> ApplyAsync(LogEntry entry, CancellationToken token)
        {
            if (entry.IsSnapshot)
            {
                await Task.Delay(200, token);
                Snapshot = new HoldsSnapshot(entry.Index, entry.Term);
            }

            return entry.Index;
        }

        public ValueTask ReclaimGarbageAsync(long watermark, CancellationToken token) => ValueTask.CompletedTask;
    }

    private sealed class SnapshotEntry(long index, long term) : IRaftLogEntry
    {
        public long Term => term;

        public long Index => index;

        bool ILogEntry.IsSnapshot => true;

        bool IDataTransferObject.IsReusable => true;

        long? IDataTransferObject.Length => 0;

        public ValueTask WriteToAsync<TWriter>(TWriter writer, CancellationToken token)
            where TWriter : IAsyncBinaryWriter => ValueTask.CompletedTask;
    }

    private sealed class HoldsSnapshot(long index, long term) : IStateMachine, ISnapshot
    {
        public ISnapshot? Snapshot => this;

        public long Index => index;

        public long Term => term;

        bool IDataTransferObject.IsReusable => true;

        long? IDataTransferObject.Length => 0;

        public ValueTask WriteToAsync<TWriter>(TWriter writer, CancellationToken token)
            where TWriter : IAsyncBinaryWriter => ValueTask.CompletedTask;

        public ValueTask<long> ApplyAsync(LogEntry entry, CancellationToken token) => ValueTask.FromResult(entry.Index);

        public ValueTask ReclaimGarbageAsync(long watermark, CancellationToken token) => ValueTask.CompletedTask;
    }

    private sealed class AppliesNothing : IStateMachine
    {
        public ISnapshot? Snapshot => null;

        public ValueTask<long> ApplyAsync(LogEntry entry, CancellationToken token) => ValueTask.FromResult(entry.Index);

        public ValueTask ReclaimGarbageAsync(long watermark, CancellationToken token) => ValueTask.CompletedTask;
    }
}
