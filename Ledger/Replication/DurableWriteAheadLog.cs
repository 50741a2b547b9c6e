using System.Buffers.Binary;
using System.Diagnostics.Metrics;
using DotNext.IO.Log;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Microsoft.Win32.SafeHandles;

namespace Health.Ledger.Replication;

/// <summary>
/// DotNext's write-ahead log, except that entries a leader replicates to this node are on disk
/// before the node acknowledges them.
/// </summary>
/// <remarks>
/// <para>
/// Raft counts an entry as committed once a majority has stored it. DotNext's follower answers
/// <c>AppendEntries</c> as soon as the entries are in mapped memory; its background flusher writes
/// them and then the checkpoint file (commit and last index, written through to disk) a moment
/// later, and after a crash the log keeps only what that checkpoint covers. A leader could
/// therefore commit and apply an entry that, after every node is killed at once, no majority kept;
/// the group then writes another entry at that index and the old leader, which treats its copy as
/// committed, never converges.
/// </para>
/// <para>
/// The follower path (the one overload DotNext calls with entries from the leader) now waits until
/// the checkpoint file covers what it appended. It does not use <c>FlushAsync</c>: that waits on a
/// notification DotNext's own commit path also waits on, which admits a single waiter, and a
/// leader stepping down can still be committing while the new leader's entries arrive. Instead,
/// the end of each flush round is observed through DotNext's <c>entries-flush-duration</c>
/// histogram, recorded after the checkpoint is written, and the checkpoint file is read. The leader's
/// own commit already waits for its flush, so a committed entry is on the disk of a majority.
/// </para>
/// </remarks>
internal sealed class DurableWriteAheadLog : WriteAheadLog, IAuditTrail<IRaftLogEntry>
{
    private const string DotNextMeter = "DotNext.IO.WriteAheadLog";
    private const string FlushRoundEnded = "entries-flush-duration";
    private const int CheckpointVersion0Size = 4 + 8, CheckpointVersion1Size = 4 + 8 + 8;

    // A safety net: the log is checked this often even if a round's end went unobserved.
    private static readonly TimeSpan RecheckInterval = TimeSpan.FromMilliseconds(20);

    // DotNext creates the checkpoint file when the log opens and rewrites it in place; one read
    // handle serves every check on the follower path.
    private readonly SafeFileHandle checkpoint;
    private readonly MeterListener listener = new();
    private TaskCompletionSource nextRound = NewRound();

    public DurableWriteAheadLog(Options options, IStateMachine stateMachine)
        : base(options, stateMachine)
    {
        checkpoint = File.OpenHandle(Path.Combine(options.Location, "checkpoint"), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        _ = FlushedThrough();
        listener.InstrumentPublished = (instrument, meterListener) =>
        {
            if (instrument.Meter.Name == DotNextMeter && instrument.Name == FlushRoundEnded)
                meterListener.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => Interlocked.Exchange(ref nextRound, NewRound()).TrySetResult());
        listener.Start();
    }

    async ValueTask IAuditTrail<IRaftLogEntry>.AppendAsync<TEntry>(ILogEntryProducer<TEntry> entries, long startIndex, bool skipCommitted, CancellationToken token)
    {
        await AppendAsync(entries, startIndex, skipCommitted, token).ConfigureAwait(false);
        await WaitFlushedAsync(LastEntryIndex, token).ConfigureAwait(false);
    }

    private async Task WaitFlushedAsync(long index, CancellationToken token)
    {
        while (true)
        {
            // Take the round to wait for before reading the file, so that no round's end is missed.
            var round = Volatile.Read(ref nextRound).Task;
            if (FlushedThrough() >= index)
                return;
            try
            {
                await round.WaitAsync(RecheckInterval, token).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
        }
    }

    // The last index DotNext's checkpoint file says is on disk (version 1: version, commit, last;
    // version 0: version, commit; before versions: commit alone).
    private long FlushedThrough()
    {
        Span<byte> buffer = stackalloc byte[CheckpointVersion1Size];
        var read = RandomAccess.Read(checkpoint, buffer, 0);
        if (read == 0)
            return 0;
        if (read == sizeof(long))
            return BinaryPrimitives.ReadInt64LittleEndian(buffer);
        return (read, BinaryPrimitives.ReadUInt32LittleEndian(buffer)) switch
        {
            (>= CheckpointVersion1Size, 1) => BinaryPrimitives.ReadInt64LittleEndian(buffer[12..]),
            (>= CheckpointVersion0Size, 0) => BinaryPrimitives.ReadInt64LittleEndian(buffer[4..]),
            _ => throw new InvalidDataException($"The Raft log's checkpoint file has a format this node does not know ({read} bytes)."),
        };
    }

    private static TaskCompletionSource NewRound() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            listener.Dispose();
            checkpoint.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <inheritdoc/>
    protected override ValueTask DisposeAsyncCore()
    {
        listener.Dispose();
        checkpoint.Dispose();
        return base.DisposeAsyncCore();
    }
}
