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
/// lagging follower up to date by installing it.
/// </remarks>
internal sealed partial class LedgerStateMachine : SimpleStateMachine
{
    private const string PendingSnapshotName = "snapshot-pending.db";

    /// <summary>
    /// A snapshot copies the whole projection, so the next one waits until the ledger has grown by
    /// at least this fraction (1/n) of its size at the last one: the copying per entry stays the
    /// same however large the ledger gets, and the log keeps at most about a fifth of the entries.
    /// </summary>
    private const int GrowthBetweenSnapshots = 4;
    private readonly LedgerStore store;
    private readonly MerkleTree tree;
    private readonly long snapshotInterval;
    private readonly string pendingSnapshotPath;
    private readonly ILogger logger;
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource<(long First, int Count)>> waiters = new();
    private long lastSnapshotRaftIndex;
    private long lastSnapshotTreeSize;
    private long appliedRaftIndex;

    public LedgerStateMachine(DirectoryInfo snapshotLocation, LedgerStore store, MerkleTree tree, long snapshotInterval, ILogger logger)
        : base(snapshotLocation)
    {
        this.store = store;
        this.tree = tree;
        this.snapshotInterval = snapshotInterval;
        this.logger = logger;
        pendingSnapshotPath = Path.Combine(snapshotLocation.FullName, PendingSnapshotName);
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

    protected override ValueTask<bool> ApplyAsync(LogEntry entry, CancellationToken token)
    {
        try
        {
            return ApplyCore(entry);
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

    private ValueTask<bool> ApplyCore(LogEntry entry)
    {
        if (entry.IsConfiguration || entry.Index <= store.RaftIndex || !entry.TryGetPayload(out var payload) || payload.IsEmpty)
        {
            Volatile.Write(ref appliedRaftIndex, long.Max(entry.Index, appliedRaftIndex));
            return ValueTask.FromResult(false);
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
        return ValueTask.FromResult(TakeSnapshotIfDue(entry.Index));
    }

    private void ApplyBatch(long raftIndex, CommandBatch batch)
    {
        var size = tree.Size;
        var previous = size == 0 ? LedgerEntry.GenesisHash : tree.LeafHash(size - 1);
        var timestamp = long.Max(batch.Timestamp, store.LastTimestamp);
        var applied = new List<(LedgerEntry, byte[], byte[])>(batch.Commands.Count);
        foreach (var command in batch.Commands)
        {
            var entry = new LedgerEntry(++size, timestamp, previous, command.Kind, command.Fields);
            if (entry.Kind == LedgerEntryKinds.Checkpoint.Name)
                CheckCheckpoint(entry, applied);
            var body = entry.ToCanonicalBytes();
            var leaf = MerkleHash.Leaf(body);
            applied.Add((entry, body, leaf));
            previous = leaf;
        }

        store.ApplyBatch(raftIndex, batch.Id, applied);
        foreach (var (_, _, leaf) in applied)
            tree.AppendLeafHash(leaf);
        Complete(batch.Id, (applied[0].Item1.Index, applied.Count));
    }

    // A checkpoint states the root of a tree size that was applied before it was proposed; every
    // node re-derives that root, so a divergent or forged checkpoint is reported on every node.
    private void CheckCheckpoint(LedgerEntry entry, List<(LedgerEntry Entry, byte[] Body, byte[] Leaf)> pending)
    {
        try
        {
            var checkpoint = SignedCheckpoint.FromFields(entry.Fields);
            if (checkpoint.TreeSize > tree.Size || !tree.Root(checkpoint.TreeSize).AsSpan().SequenceEqual(checkpoint.Root))
                LogCheckpointMismatch(logger, entry.Index, checkpoint.TreeSize, pending.Count);
        }
        catch (FormatException)
        {
            LogCheckpointMismatch(logger, entry.Index, -1, pending.Count);
        }
    }

    private void Complete(Guid batchId, (long First, int Count) result)
    {
        if (waiters.TryRemove(batchId, out var waiter))
            waiter.TrySetResult(result);
    }

    private bool TakeSnapshotIfDue(long raftIndex)
    {
        if (!IsSnapshotDue(raftIndex - lastSnapshotRaftIndex, snapshotInterval, tree.Size, lastSnapshotTreeSize))
            return false;

        // The copy must reflect exactly this index, so it is taken here, before the next apply;
        // PersistAsync then only streams the file.
        var started = Stopwatch.GetTimestamp();
        store.CopyTo(pendingSnapshotPath);
        lastSnapshotRaftIndex = raftIndex;
        lastSnapshotTreeSize = tree.Size;
        LogSnapshot(logger, raftIndex, tree.Size, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return true;
    }

    /// <summary>
    /// Whether a snapshot is due: after <paramref name="interval"/> Raft entries, once the ledger has
    /// also grown by a <see cref="GrowthBetweenSnapshots"/>th of its size at the last snapshot.
    /// </summary>
    internal static bool IsSnapshotDue(long raftEntriesSinceLast, long interval, long treeSize, long treeSizeAtLast)
        => raftEntriesSinceLast >= interval && treeSize - treeSizeAtLast >= treeSizeAtLast / GrowthBetweenSnapshots;

    protected override async ValueTask PersistAsync(IAsyncBinaryWriter writer, CancellationToken token)
    {
        var file = new FileStream(pendingSnapshotPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
        await using (file.ConfigureAwait(false))
            await writer.CopyFromAsync(file, count: null, token).ConfigureAwait(false);
        File.Delete(pendingSnapshotPath);
    }

    protected override ValueTask RestoreAsync(FileInfo snapshotFile, CancellationToken token)
    {
        // At start-up the projection is usually ahead of the newest snapshot: keep it. Replace it
        // only when the snapshot is newer (installed from the leader, or a projection lost).
        var snapshotRaftIndex = LedgerStore.ReadRaftIndex(snapshotFile.FullName);
        if (snapshotRaftIndex > store.RaftIndex)
        {
            store.ReplaceWith(snapshotFile.FullName);
            ReloadTree();
            lastSnapshotTreeSize = tree.Size;
            Volatile.Write(ref appliedRaftIndex, store.RaftIndex);
            LogSnapshotInstalled(logger, snapshotRaftIndex, tree.Size);
            foreach (var batchId in waiters.Keys)
            {
                if (store.FindBatchWhileApplying(batchId) is { } applied)
                    Complete(batchId, applied);
            }

            Applied?.Invoke(tree.Size);
        }

        lastSnapshotRaftIndex = long.Max(lastSnapshotRaftIndex, snapshotRaftIndex);
        return ValueTask.CompletedTask;
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

    [LoggerMessage(EventId = 1102, Level = LogLevel.Information, Message = "Snapshot taken at Raft index {RaftIndex}, tree size {TreeSize}, copied in {Milliseconds} ms")]
    private static partial void LogSnapshot(ILogger logger, long raftIndex, long treeSize, long milliseconds);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Information, Message = "Snapshot installed at Raft index {RaftIndex}, tree size {TreeSize}")]
    private static partial void LogSnapshotInstalled(ILogger logger, long raftIndex, long treeSize);
}
