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
/// The SQLite projection is durable by itself; a snapshot is a consistent copy of it taken at the
/// exact Raft index that triggered it, which lets DotNext compact the write-ahead log and bring a
/// lagging follower up to date by installing it. The copy is made in the background from a read
/// transaction opened at that index, so applying goes on while it is written (DotNext's
/// <c>SimpleStateMachine</c> held every apply until its snapshot was on disk).
/// </remarks>
internal sealed partial class LedgerStateMachine : IStateMachine, IAsyncDisposable
{
    /// <summary>
    /// A snapshot copies the whole projection on every node, so the next one waits until the ledger
    /// has grown by at least this fraction (1/n) of its size at the last one: the copying per entry
    /// stays the same however large the ledger gets. One (the ledger has doubled) makes it a copy's
    /// worth per entry; a quarter cost four, a sixth to a fifth of the nodes' CPU at 256 clients
    /// (docs/PERFORMANCE.md). The log then keeps at most about half of the entries.
    /// </summary>
    private const int GrowthBetweenSnapshots = 1;

    private readonly LedgerStore store;
    private readonly MerkleTree tree;
    private readonly long snapshotInterval;
    private readonly SnapshotDirectory snapshots;
    private readonly SnapshotTransfer transfer;
    private readonly ILogger logger;
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource<(long First, int Count)>> waiters = new();
    private readonly Lock snapshotLock = new();
    private volatile SnapshotOffer? snapshot;
    private Task snapshotting = Task.CompletedTask;
    private long lastSnapshotRaftIndex;
    private long lastSnapshotTreeSize;
    private long appliedRaftIndex;

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
        lastSnapshotTreeSize = tree.Size;
    }

    /// <summary>Raft index of the last applied log entry.</summary>
    public long AppliedRaftIndex => Volatile.Read(ref appliedRaftIndex);

    /// <summary>Raised after each applied batch with the new tree size.</summary>
    public event Action<long>? Applied;

    /// <summary>Returns a task that completes with the batch's first ledger index and count once it is applied here.</summary>
    public Task<(long First, int Count)> WaitForBatch(Guid batchId)
    {
        var waiter = waiters.GetOrAdd(batchId, static _ => new(TaskCreationOptions.RunContinuationsAsynchronously));
        if (store.FindBatch(batchId) is { } applied)
            Complete(batchId, applied);
        return waiter.Task;
    }

    /// <summary>Stops waiting for a batch.</summary>
    public void ForgetBatch(Guid batchId) => waiters.TryRemove(batchId, out _);

    /// <summary>The newest snapshot on disk; DotNext sends followers too far behind a reference to it.</summary>
    public ISnapshot? Snapshot => snapshot;

    /// <summary>The snapshot file at <paramref name="index"/> and <paramref name="term"/>, if this node holds it (for members fetching it).</summary>
    public FileInfo? FindSnapshot(long index, long term) => snapshots.Find(index, term)?.File;

    /// <inheritdoc/>
    public ValueTask<long> ApplyAsync(LogEntry entry, CancellationToken token)
    {
        if (entry.IsSnapshot)
            return InstallSnapshotAsync(entry, token);
        try
        {
            ApplyCore(entry);
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
        StartSnapshotIfDue(entry.Index, entry.Term);
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

    private void StartSnapshotIfDue(long raftIndex, long term)
    {
        if (!snapshotting.IsCompleted || !IsSnapshotDue(raftIndex - lastSnapshotRaftIndex, snapshotInterval, tree.Size, lastSnapshotTreeSize))
            return;

        // The copy must reflect exactly this index: its read transaction starts here, before the
        // next apply, and the pages are copied from it in the background.
        var view = store.BeginCopy();
        lastSnapshotRaftIndex = raftIndex;
        lastSnapshotTreeSize = tree.Size;
        var treeSize = tree.Size;

        // Its own thread: the copy blocks on disk for a while and must not wait for a pool thread.
        snapshotting = Task.Factory.StartNew(() => WriteSnapshot(view, raftIndex, term, treeSize), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private void WriteSnapshot(LedgerStore.ProjectionCopy view, long raftIndex, long term, long treeSize)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var taken = snapshots.Write(raftIndex, term, view.WriteTo);

            // Hashed here, in the background, rather than in the Raft request that first refers a follower to it.
            taken.Sha256();
            Publish(taken);
            LogSnapshot(logger, raftIndex, treeSize, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Microsoft.Data.Sqlite.SqliteException)
        {
            // The log keeps its entries until a later snapshot succeeds; nothing is lost.
            LogSnapshotFailed(logger, raftIndex, e);
        }
        finally
        {
            view.Dispose();
        }
    }

    private void Publish(LedgerSnapshot taken)
    {
        lock (snapshotLock)
        {
            if (snapshot is null || taken.Index > snapshot.Index)
                snapshot = transfer.Offer(taken);
        }
    }

    /// <summary>
    /// Whether a snapshot is due: after <paramref name="interval"/> Raft entries, once the ledger has
    /// also grown by its size at the last snapshot (<see cref="GrowthBetweenSnapshots"/>).
    /// </summary>
    internal static bool IsSnapshotDue(long raftEntriesSinceLast, long interval, long treeSize, long treeSizeAtLast)
        => raftEntriesSinceLast >= interval && treeSize - treeSizeAtLast >= treeSizeAtLast / GrowthBetweenSnapshots;

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

        // The projection is about to be replaced: a copy of it still being written finishes first,
        // in a request of its own, so that this one answers within Raft's timeout.
        if (!snapshotting.IsCompleted)
            throw new SnapshotNotReadyException($"This node is still writing a snapshot of its own; the one at Raft index {reference.Index} is installed after it.");
        LedgerSnapshot installed;
        using (var excluded = store.TryExcludeReaders(transfer.WaitPerRequest)
            ?? throw new SnapshotNotReadyException($"Reads of the projection still running; the snapshot at Raft index {reference.Index} is installed once they end."))
        {
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
    /// At start-up: finds the newest snapshot and, when it is ahead of the projection (a projection
    /// lost or reset), replaces the projection with it.
    /// </summary>
    public ValueTask RestoreAsync(CancellationToken token)
    {
        snapshots.RemoveUnfinished();
        if (snapshots.Newest() is { } newest)
        {
            Publish(newest);
            Restore(newest);
        }

        return ValueTask.CompletedTask;
    }

    private void Restore(LedgerSnapshot from)
    {
        // At start-up the projection is usually ahead of the newest snapshot: keep it. Replace it
        // only when the snapshot is newer (installed from the leader, or a projection lost).
        var snapshotRaftIndex = LedgerStore.ReadRaftIndex(from.File.FullName);
        if (snapshotRaftIndex > store.RaftIndex)
        {
            store.ReplaceWith(from.File.FullName);
            ReloadTree();
            Installed(snapshotRaftIndex);
        }

        lastSnapshotRaftIndex = long.Max(lastSnapshotRaftIndex, snapshotRaftIndex);
    }

    // The projection and the tree now hold a snapshot's entries.
    private void Installed(long snapshotRaftIndex)
    {
        lastSnapshotTreeSize = tree.Size;
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
    /// Forgets the projection: it holds entries the Raft log no longer has (the log's unflushed tail
    /// was dropped at start-up), so it is rebuilt from the newest snapshot and the log.
    /// </summary>
    public void ResetProjection()
    {
        store.ResetToEmpty();
        ReloadTree();
        Volatile.Write(ref appliedRaftIndex, 0);
        lastSnapshotRaftIndex = 0;
        lastSnapshotTreeSize = 0;
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

    [LoggerMessage(EventId = 1102, Level = LogLevel.Information, Message = "Snapshot taken at Raft index {RaftIndex}, tree size {TreeSize}, written in the background in {Milliseconds} ms")]
    private static partial void LogSnapshot(ILogger logger, long raftIndex, long treeSize, long milliseconds);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Information, Message = "Snapshot installed at Raft index {RaftIndex}, tree size {TreeSize}")]
    private static partial void LogSnapshotInstalled(ILogger logger, long raftIndex, long treeSize);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Warning, Message = "The snapshot at Raft index {RaftIndex} could not be written; the log keeps its entries until the next one")]
    private static partial void LogSnapshotFailed(ILogger logger, long raftIndex, Exception exception);
}
