using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Health.Ledger.Checkpoints;
using Health.Ledger.Entries;
using Health.Ledger.Merkle;
using Health.Ledger.Storage;
using Microsoft.Extensions.Logging;

namespace Health.Ledger.Replication;

/// <summary>
/// Applies committed Raft entries (command batches) to the ledger: assigns indices and timestamps,
/// chains hashes, grows the Merkle tree, writes the SQLite projection, and wakes the appenders
/// waiting for their batch. Apply is deterministic, so every node reaches the same ledger.
/// </summary>
/// <remarks>
/// The SQLite projection is the state DotNext's snapshots stand for. Every
/// <c>snapshotInterval</c> Raft entries the projection is flushed to disk and a mark records the
/// Raft index it then holds. Nothing is copied for that. DotNext is given the mark before the
/// newest and drops the log entries up to it, so the log keeps at least an interval of entries: a
/// follower that was away for less catches up from the log rather than by a copy of everything.
/// A copy of the projection is made only when a member needs one (a follower behind the compacted
/// log, or one that starts empty): from a read transaction, in the background while applying goes
/// on, holding the projection at the mark or later; the follower installs it and skips the log
/// entries it already holds. A node whose projection is lost can no longer rebuild it from the
/// log alone: it takes the ledger again from the group (<see cref="RestoreAsync"/>).
/// </remarks>
internal sealed partial class LedgerStateMachine : IStateMachine, IAsyncDisposable
{
    private readonly LedgerStore store;
    private readonly MerkleTree tree;
    private readonly long snapshotInterval;
    private readonly SnapshotDirectory snapshots;
    private readonly SnapshotTransfer transfer;
    private readonly ILogger logger;
    private readonly ConcurrentDictionary<Guid, BatchWaiter> waiters = new();

    // Held while an entry is applied: a copy's read transaction starts between two entries.
    private readonly Lock applying = new();

    // Guards the background work (one mark or copy at a time) and the published snapshot.
    private readonly Lock snapshotLock = new();
    private volatile SnapshotOffer? snapshot;
    private Task snapshotting = Task.CompletedTask;
    private long lastSnapshotRaftIndex;
    private long appliedRaftIndex;

    // The newest mark, published once the next one is written.
    private LedgerSnapshot? newestMark;

    /// <summary>
    /// How long after a member last asked for the published snapshot no newer mark replaces it. A
    /// newer mark would send members still fetching (or waiting for the copy) to a copy that does
    /// not exist yet, and they would start over; with marks closer together than a catch-up takes
    /// (a large ledger, few appends per Raft entry), a follower would never catch up.
    /// </summary>
    internal static readonly TimeSpan SnapshotDemandWindow = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The longest one snapshot is kept for members asking for it: a member that never finishes
    /// installing must not stop the log's compaction. A million entries take a few seconds.
    /// </summary>
    internal static readonly TimeSpan SnapshotLongestHold = TimeSpan.FromMinutes(5);

    public LedgerStateMachine(DirectoryInfo snapshotLocation, LedgerStore store, MerkleTree tree, long snapshotInterval, SnapshotTransfer transfer, ILogger logger)
    {
        this.store = store;
        this.transfer = transfer;
        this.tree = tree;
        this.snapshotInterval = snapshotInterval;
        this.logger = logger;
        snapshots = new SnapshotDirectory(snapshotLocation);
        appliedRaftIndex = store.RaftIndex;
        lastSnapshotRaftIndex = store.RaftIndex;
        ReloadTree();
    }

    /// <summary>Raft index of the last applied log entry.</summary>
    public long AppliedRaftIndex => Volatile.Read(ref appliedRaftIndex);

    /// <summary>Raised after each applied batch with the new tree size.</summary>
    public event Action<long>? Applied;

    /// <summary>
    /// Returns a task that completes with the batch's first ledger index and count once it is applied
    /// here, and runs <paramref name="committed"/> once the batch is committed, as this node starts
    /// applying it (on the applier's thread, so it must be short). Call it before the batch is first
    /// proposed: a batch applied earlier is not looked up.
    /// </summary>
    public Task<(long First, int Count)> WaitForBatch(Guid batchId, Action committed)
        => waiters.GetOrAdd(batchId, static (_, committed) => new BatchWaiter(committed), committed).Task;

    /// <summary>Stops waiting for a batch; its commit callback no longer runs.</summary>
    public void ForgetBatch(Guid batchId) => waiters.TryRemove(batchId, out _);

    /// <summary>The newest snapshot on disk; DotNext sends followers too far behind a reference to its copy.</summary>
    public ISnapshot? Snapshot => snapshot;

    /// <summary>The copy of the snapshot at <paramref name="index"/> and <paramref name="term"/>, if this node holds one (for members fetching it).</summary>
    public FileInfo? FindSnapshot(long index, long term) => snapshots.Find(index, term)?.File;

    /// <inheritdoc/>
    public ValueTask<long> ApplyAsync(LogEntry entry, CancellationToken token)
    {
        if (entry.IsSnapshot)
            return InstallSnapshotAsync(entry, token);
        try
        {
            lock (applying)
                ApplyCore(entry);
            StartMarkIfDue(entry.Index, entry.Term);
            return ValueTask.FromResult(AppliedRaftIndex);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A node that cannot apply the log must not keep serving from a stale projection, and
            // DotNext stops applying after a failure anyway. Stopping lets a supervisor restart it:
            // the projection is durable and the log is replayed from where it stopped.
            LogApplyFailed(logger, entry.Index, e);
            Environment.FailFast($"Ledger apply failed at Raft index {entry.Index}: {e.GetType().Name}");
            throw;
        }
    }

    private void ApplyCore(LogEntry entry)
    {
        if (entry.IsConfiguration || entry.Index <= store.RaftIndex || !entry.TryGetPayload(out var payload) || payload.IsEmpty)
        {
            Volatile.Write(ref appliedRaftIndex, long.Max(entry.Index, appliedRaftIndex));
            return;
        }

        var batch = CommandBatch.Decode(payload.IsSingleSegment ? payload.FirstSpan : payload.ToArray());
        if (waiters.TryGetValue(batch.Id, out var waiter))
            waiter.Committed();
        if (store.FindBatchWhileApplying(batch.Id) is { } duplicate)
        {
            store.AdvanceRaftIndex(entry.Index);
            Complete(batch.Id, duplicate);
        }
        else
        {
            ApplyBatch(entry.Index, batch);
        }

        Volatile.Write(ref appliedRaftIndex, entry.Index);
        Applied?.Invoke(tree.Size);
    }

    private void ApplyBatch(long raftIndex, CommandBatch batch)
    {
        var size = tree.Size;
        var previous = size == 0 ? LedgerEntry.GenesisHash : tree.LeafHash(size - 1);
        var timestamp = long.Max(batch.Timestamp, store.LastTimestamp);
        var applied = new List<(LedgerEntry, byte[], byte[])>(batch.Commands.Count);
        List<long>? divergences = null;
        foreach (var command in batch.Commands)
        {
            var entry = new LedgerEntry(++size, timestamp, previous, command.Kind, command.Fields);
            if (entry.Kind == LedgerEntryKinds.Checkpoint.Name && !MatchesTree(entry, applied))
                (divergences ??= []).Add(entry.Index);
            var body = entry.ToCanonicalBytes();
            var leaf = MerkleHash.Leaf(body);
            applied.Add((entry, body, leaf));
            previous = leaf;
        }

        store.ApplyBatch(raftIndex, batch.Id, applied, (IReadOnlyCollection<long>?)divergences ?? []);
        foreach (var (_, _, leaf) in applied)
            tree.AppendLeafHash(leaf);
        Complete(batch.Id, (applied[0].Item1.Index, applied.Count));
    }

    // A checkpoint states the root of a tree size that was applied before it was proposed; every
    // node re-derives that root, so a divergent or forged checkpoint is reported on every node, and
    // a node that disagrees records it: its ledger is no longer the group's (LedgerStore.FirstDivergence).
    private bool MatchesTree(LedgerEntry entry, List<(LedgerEntry Entry, byte[] Body, byte[] Leaf)> pending)
    {
        try
        {
            var checkpoint = SignedCheckpoint.FromFields(entry.Fields);
            if (checkpoint.TreeSize <= tree.Size && tree.Root(checkpoint.TreeSize).AsSpan().SequenceEqual(checkpoint.Root))
                return true;
            LogCheckpointMismatch(logger, entry.Index, checkpoint.TreeSize, pending.Count);
        }
        catch (FormatException)
        {
            LogCheckpointMismatch(logger, entry.Index, -1, pending.Count);
        }

        return false;
    }

    private void Complete(Guid batchId, (long First, int Count) result)
    {
        if (waiters.TryRemove(batchId, out var waiter))
            waiter.TrySetResult(result);
    }

    // A proposer's wait for its batch: the commit callback runs at most once, the task completes on apply.
    private sealed class BatchWaiter(Action committed) : TaskCompletionSource<(long First, int Count)>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        private Action? committed = committed;

        public void Committed() => Interlocked.Exchange(ref committed, null)?.Invoke();
    }

    // A mark costs a flush of what the projection committed since the last one, in the background;
    // the entries it covers are dropped from DotNext's log once it is published.
    private void StartMarkIfDue(long raftIndex, long term)
    {
        if (raftIndex - lastSnapshotRaftIndex < snapshotInterval || raftIndex != store.RaftIndex)
            return;
        lock (snapshotLock)
        {
            if (!snapshotting.IsCompleted)
                return;
            lastSnapshotRaftIndex = raftIndex;
            snapshotting = Task.Factory.StartNew(() => Mark(raftIndex, term), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
    }

    private void Mark(long raftIndex, long term)
    {
        try
        {
            // Everything applied so far, the entry at raftIndex included, is committed in SQLite.
            store.FlushCommitted();
            if (Interlocked.Exchange(ref newestMark, snapshots.Mark(raftIndex, term)) is { } previous && snapshot?.IsInDemand(SnapshotDemandWindow, SnapshotLongestHold) != true)
                Publish(previous);
            LogMarked(logger, raftIndex, snapshot?.Index ?? 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The log keeps its entries until a later mark succeeds; nothing is lost.
            LogSnapshotFailed(logger, raftIndex, e);
        }
    }

    // A member needs the newest snapshot's contents: the projection is copied as it is now, which
    // holds the mark's entries and perhaps more, under the mark's name.
    private void RequestCopy()
    {
        lock (snapshotLock)
        {
            if (!snapshotting.IsCompleted || snapshot is not { Snapshot.File: null } mark)
                return;
            snapshotting = Task.Factory.StartNew(() => WriteCopy(mark.Snapshot), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
    }

    private void WriteCopy(LedgerSnapshot mark)
    {
        var started = Stopwatch.GetTimestamp();
        LedgerStore.ProjectionCopy? view = null;
        try
        {
            long raftIndex, treeSize;
            lock (applying)
            {
                view = store.BeginCopy();
                (raftIndex, treeSize) = (store.RaftIndex, tree.Size);
            }

            var taken = snapshots.Write(mark.Index, mark.Term, view.WriteTo);

            // Hashed here, in the background, rather than in the Raft request that refers a follower to it.
            taken.Sha256();
            Publish(taken);
            LogSnapshotCopied(logger, mark.Index, raftIndex, treeSize, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Microsoft.Data.Sqlite.SqliteException)
        {
            // Asked for again with the leader's next request.
            LogSnapshotFailed(logger, mark.Index, e);
        }
        finally
        {
            view?.Dispose();
        }
    }

    private void Publish(LedgerSnapshot taken)
    {
        lock (snapshotLock)
        {
            if (snapshot is null || taken.Index > snapshot.Index || (taken.Index == snapshot.Index && taken.File is not null))
                snapshot = transfer.Offer(taken, RequestCopy);
        }
    }

    // A follower too far behind receives a reference to the leader's snapshot as a log entry (a
    // member of an earlier version sends the whole file). While the file is still being fetched,
    // the request fails and the leader sends it again; once it is here, installing is quick.
    private async ValueTask<long> InstallSnapshotAsync(LogEntry entry, CancellationToken token)
    {
        if (entry.Length is not <= SnapshotReference.MaxEncodedLength)
        {
            await snapshotting.ConfigureAwait(false);
            var received = await snapshots.WriteAsync(entry.Index, entry.Term, entry, token).ConfigureAwait(false);
            Restore(received);
            Publish(received);
            return AppliedRaftIndex;
        }

        var reference = SnapshotReference.TryDecode(await entry.ToByteArrayAsync(token: token).ConfigureAwait(false))
            ?? throw new InvalidDataException($"The snapshot at Raft index {entry.Index} is neither a reference nor a projection.");
        if (reference.Index != entry.Index || reference.Term != entry.Term)
            throw new InvalidDataException($"The snapshot reference names Raft index {reference.Index}, term {reference.Term}, but came for {entry.Index}, term {entry.Term}.");

        // Installed already, though DotNext's log does not know it (the node stopped after the
        // install and before DotNext's checkpoint named it): answered at once rather than fetched again.
        if (snapshot is { } held && held.Index == entry.Index && held.Term == entry.Term && AppliedRaftIndex >= entry.Index)
            return AppliedRaftIndex;

        var fetched = await transfer.WaitForAsync(reference, token).ConfigureAwait(false);

        LedgerSnapshot installed;
        using (var excluded = store.TryExcludeReaders(transfer.WaitPerRequest)
            ?? throw new SnapshotNotReadyException($"Reads of the projection still running; the snapshot at Raft index {reference.Index} is installed once they end."))
        lock (snapshotLock)
        {
            // The projection is about to be replaced: a mark or copy of it still being written
            // finishes first, in a request of its own, so that this one answers within Raft's timeout.
            if (!snapshotting.IsCompleted)
                throw new SnapshotNotReadyException($"This node is still writing a snapshot of its own; the one at Raft index {reference.Index} is installed after it.");
            try
            {
                installed = snapshots.Adopt(fetched.File, entry.Index, entry.Term).WithKnownSha256(reference.Sha256);
                store.ReplaceWithMoved(fetched.Projection, excluded);
                tree.ReplaceWith(fetched.Tree);
            }
            finally
            {
                transfer.Release(reference);
            }
        }

        Installed(entry.Index);
        Publish(installed);

        // Answered even if the request was cancelled meanwhile (Raft's timeout passed, the process
        // was paused), so that DotNext's log records the install as the state machine now holds it;
        // ending with the cancellation would leave the state machine's snapshot ahead of DotNext's
        // log, which DotNext does not expect. The answer may be lost; the leader then counts the
        // follower's refusal of the same snapshot as the snapshot replicated (DurableWriteAheadLog).
        return AppliedRaftIndex;
    }

    /// <summary>
    /// At start-up: finds the newest snapshot and publishes it. The projection normally holds its
    /// entries and more; one lost or set aside is replaced with the newest copy if that holds them.
    /// </summary>
    /// <returns>
    /// False when the projection holds fewer entries than the log was compacted to and no copy
    /// holds them: nothing is published, and the node must set its log aside, call
    /// <see cref="ForgetLedger"/> and take the ledger again from the group.
    /// </returns>
    public ValueTask<bool> RestoreAsync(CancellationToken token)
    {
        snapshots.RemoveUnfinished();
        if (snapshots.Newest() is not { } newest)
            return ValueTask.FromResult(true);
        if (store.RaftIndex < newest.Index)
        {
            if (snapshots.NewestCopy() is not { } copy || LedgerStore.ReadRaftIndex(copy.File!.FullName) < newest.Index)
                return ValueTask.FromResult(false);
            Restore(copy);
        }

        Publish(newest);
        lastSnapshotRaftIndex = long.Max(lastSnapshotRaftIndex, newest.Index);
        return ValueTask.FromResult(true);
    }

    /// <summary>
    /// Empties the projection and deletes every snapshot, for a node that takes the ledger again
    /// from the group (its log set aside): the leader then sends it a snapshot.
    /// </summary>
    public void ForgetLedger()
    {
        ResetProjection();
        snapshots.RemoveAll();
        snapshot = null;
    }

    private void Restore(LedgerSnapshot from)
    {
        // At start-up the projection is usually ahead of the newest snapshot: keep it. Replace it
        // only when the snapshot is newer (installed from the leader, or a projection lost).
        var file = from.File!.FullName;
        var snapshotRaftIndex = LedgerStore.ReadRaftIndex(file);
        if (snapshotRaftIndex > store.RaftIndex)
        {
            store.ReplaceWith(file);
            ReloadTree();
            Installed(snapshotRaftIndex);
        }

        lastSnapshotRaftIndex = long.Max(lastSnapshotRaftIndex, snapshotRaftIndex);
    }

    // The projection and the tree now hold a snapshot's entries.
    private void Installed(long snapshotRaftIndex)
    {
        lastSnapshotRaftIndex = long.Max(lastSnapshotRaftIndex, snapshotRaftIndex);
        Volatile.Write(ref appliedRaftIndex, store.RaftIndex);
        LogSnapshotInstalled(logger, snapshotRaftIndex, tree.Size);
        foreach (var batchId in waiters.Keys)
        {
            if (store.FindBatchWhileApplying(batchId) is { } applied)
                Complete(batchId, applied);
        }

        Applied?.Invoke(tree.Size);
    }

    /// <inheritdoc/>
    public ValueTask ReclaimGarbageAsync(long watermark, CancellationToken token)
    {
        snapshots.RemoveOlderThan(long.Min(watermark, snapshot?.Index ?? 0));
        return ValueTask.CompletedTask;
    }

    /// <summary>Stops a snapshot download and waits for a snapshot still being written.</summary>
    public async ValueTask DisposeAsync()
    {
        transfer.Dispose();
        await snapshotting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>
    /// Forgets the projection: it holds entries the Raft log no longer has (log files lost or set
    /// aside), so it is rebuilt from the newest copy and the log, or taken again from the group.
    /// </summary>
    public void ResetProjection()
    {
        store.ResetToEmpty();
        ReloadTree();
        Volatile.Write(ref appliedRaftIndex, 0);
        lastSnapshotRaftIndex = 0;
        newestMark = null;
    }

    private void ReloadTree()
    {
        tree.Clear();
        foreach (var leaf in store.ReadLeafHashes())
            tree.AppendLeafHash(leaf);
    }

    [LoggerMessage(EventId = 1101, Level = LogLevel.Critical, Message = "Checkpoint at ledger index {LedgerIndex} does not match the applied tree (tree size {TreeSize}, batch position {Position})")]
    private static partial void LogCheckpointMismatch(ILogger logger, long ledgerIndex, long treeSize, int position);

    [LoggerMessage(EventId = 1104, Level = LogLevel.Critical, Message = "Applying Raft index {RaftIndex} failed; the node stops")]
    private static partial void LogApplyFailed(ILogger logger, long raftIndex, Exception exception);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Information, Message = "Snapshot marked at Raft index {RaftIndex}: the projection holds it on disk; the log keeps the entries after the mark before it, at {CompactedTo}")]
    private static partial void LogMarked(ILogger logger, long raftIndex, long compactedTo);

    [LoggerMessage(EventId = 1111, Level = LogLevel.Information, Message = "Snapshot at Raft index {MarkIndex} copied for a member that needs it: the projection at Raft index {RaftIndex}, tree size {TreeSize}, in {Milliseconds} ms")]
    private static partial void LogSnapshotCopied(ILogger logger, long markIndex, long raftIndex, long treeSize, long milliseconds);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Information, Message = "Snapshot installed at Raft index {RaftIndex}, tree size {TreeSize}")]
    private static partial void LogSnapshotInstalled(ILogger logger, long raftIndex, long treeSize);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Warning, Message = "The snapshot at Raft index {RaftIndex} could not be written; the log keeps its entries until the next mark, and a copy is asked for again")]
    private static partial void LogSnapshotFailed(ILogger logger, long raftIndex, Exception exception);
}
