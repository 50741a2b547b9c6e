using System.Diagnostics.Metrics;
using System.Linq.Expressions;
using System.Reflection;
using System.Runtime.CompilerServices;
using DotNext.IO.Log;
using DotNext.Net.Cluster;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Microsoft.Extensions.Logging;

namespace Health.Ledger.Replication;

/// <summary>
/// DotNext's write-ahead log, except that entries a leader replicates to this node are on disk
/// before the node acknowledges them, and that a leader sends a follower far behind its entries in
/// bounded requests, that a follower which holds the snapshot it is sent counts as having it, and
/// that a node which lost its log can refuse every vote until it has caught up.
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
/// The follower path (the one overload DotNext calls with entries from the leader) therefore waits
/// until the flusher has written everything it appended, by DotNext's own measure: the index of the
/// first entry not yet flushed, which an append that replaces entries lowers to the first one it
/// replaced. The checkpoint file alone cannot tell: after entries are replaced it still names the
/// old, longer tail until the next flush, and a node killed in between restarts with the stale
/// entries after the new ones, can then vote for a candidate that lacks entries it acknowledged,
/// and the group loses them. DotNext keeps that index in a private field, read here through a
/// compiled accessor that fails at start-up, not silently, if a DotNext version renames it.
/// </para>
/// <para>
/// The wait does not use <c>FlushAsync</c>: that waits on a notification DotNext's own commit path
/// also waits on, which admits a single waiter, and a leader stepping down can still be committing
/// while the new leader's entries arrive. Instead, the end of each flush round is observed through
/// DotNext's <c>entries-flush-duration</c> histogram, recorded after the round's checkpoint is
/// written. The leader's own commit already waits for its flush, so a committed entry is on the
/// disk of a majority.
/// </para>
/// </remarks>
internal sealed partial class DurableWriteAheadLog : WriteAheadLog, IAuditTrail<IRaftLogEntry>, IPersistentState
{
    private const string DotNextMeter = "DotNext.IO.WriteAheadLog";
    private const string FlushRoundEnded = "entries-flush-duration";

    // A safety net: the log is checked this often even if a round's end went unobserved.
    private static readonly TimeSpan RecheckInterval = TimeSpan.FromMilliseconds(20);

    private static readonly Func<WriteAheadLog, long> FirstUnflushedIndex = CompileFlushStateField("UnflushedIndex");
    private static readonly Func<WriteAheadLog, long> FlushedCommitIndex = CompileFlushStateField("FlushedCommitIndex");
    private static readonly Func<WriteAheadLog, Exception?> BackgroundFailure = CompileBackgroundFailure();
    private static readonly VoteCheck LoggedVoteAllows = CompileVoteCheck();

    private readonly MeterListener listener = new();
    private readonly ILogger logger;
    private readonly IStateMachine stateMachine;
    private TaskCompletionSource nextRound = NewRound();

    public DurableWriteAheadLog(Options options, IStateMachine stateMachine, ILogger logger)
        : base(options, stateMachine)
    {
        this.logger = logger;
        this.stateMachine = stateMachine;
        listener.InstrumentPublished = (instrument, meterListener) =>
        {
            if (instrument.Meter.Name == DotNextMeter && instrument.Name == FlushRoundEnded)
                meterListener.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => Interlocked.Exchange(ref nextRound, NewRound()).TrySetResult());
        listener.Start();
    }

    /// <summary>
    /// Whether this node refuses every vote: set while it catches up after losing its Raft log
    /// (<see cref="RaftStateLoss"/>), whose emptier log would otherwise let a candidate lacking
    /// committed entries win.
    /// </summary>
    internal bool RefusesVotes
    {
        get => Volatile.Read(ref field);
        set => Volatile.Write(ref field, value);
    }

    // DotNext grants a vote only when this answers true (and the candidate's log is up to date).
    bool IPersistentState.IsVotedFor(in ClusterMemberId id) => !RefusesVotes && LoggedVoteAllows(this, in id);

    private delegate bool VoteCheck(WriteAheadLog log, in ClusterMemberId id);

    // WriteAheadLog's own answer: no vote given in this term yet, or given to this candidate.
    private static VoteCheck CompileVoteCheck()
    {
        var map = typeof(WriteAheadLog).GetInterfaceMap(typeof(IPersistentState));
        var index = Array.FindIndex(map.InterfaceMethods, static m => m.Name == nameof(IPersistentState.IsVotedFor));
        return index < 0
            ? throw new NotSupportedException("This DotNext version checks votes differently; DurableWriteAheadLog must be reviewed against it.")
            : map.TargetMethods[index].CreateDelegate<VoteCheck>();
    }

    /// <summary>The term of the newest entry in the log (0 for an empty log).</summary>
    internal ValueTask<long> LastEntryTermAsync(CancellationToken token)
    {
        var index = LastEntryIndex;
        return index == 0 ? ValueTask.FromResult(0L) : ReadAsync(TermOfFirstEntry.Instance, index, index, token);
    }

    /// <summary>Whether every entry up to <paramref name="index"/> is flushed to disk.</summary>
    internal bool IsFlushedThrough(long index) => FirstUnflushedIndex(this) > index;

    async ValueTask IAuditTrail<IRaftLogEntry>.AppendAsync<TEntry>(ILogEntryProducer<TEntry> entries, long startIndex, bool skipCommitted, CancellationToken token)
    {
        await AppendAsync(entries, startIndex, skipCommitted, token).ConfigureAwait(false);
        await WaitFlushedAsync(LastEntryIndex, token).ConfigureAwait(false);
    }

    private Task WaitFlushedAsync(long index, CancellationToken token) => WaitForFlusherAsync(() => IsFlushedThrough(index), askForRound: null, token);

    // Waits, a flush round at a time, until `reached` holds, asking the flusher for a round first
    // whenever `askForRound` does; ends with an error if the flusher has failed.
    private async Task WaitForFlusherAsync(Func<bool> reached, Func<bool>? askForRound, CancellationToken token)
    {
        while (true)
        {
            // Take the round to wait for before reading the state, so that no round's end is missed.
            var round = Volatile.Read(ref nextRound).Task;
            if (reached())
                return;
            ThrowIfFlusherFailed();
            if (askForRound?.Invoke() == true)
                await FlushAsync(token).ConfigureAwait(false);
            try
            {
                await round.WaitAsync(RecheckInterval, token).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
        }
    }

    // WriteAheadLog.flusherState (an Atomic<FlushState>) holds UnflushedIndex, the first index the
    // flusher has yet to write, and FlushedCommitIndex, the commit index in the checkpoint file; both
    // are set after the round's checkpoint is written through. One aligned long is read, so no lock
    // is needed.
    private static Func<WriteAheadLog, long> CompileFlushStateField(string name)
    {
        const BindingFlags Private = BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public;
        var flusherState = typeof(WriteAheadLog).GetField("flusherState", Private);
        var state = flusherState?.FieldType.GetFields(Private).SingleOrDefault(f => f.FieldType.Name == "FlushState");
        var field = state?.FieldType.GetField(name, Private);
        if (flusherState is null || state is null || field is null || field.FieldType != typeof(long))
            throw new NotSupportedException("This DotNext version keeps its flush state differently; DurableWriteAheadLog must be reviewed against it.");

        var log = Expression.Parameter(typeof(WriteAheadLog), "log");
        var read = Expression.Field(Expression.Field(Expression.Field(log, flusherState), state), field);
        return Expression.Lambda<Func<WriteAheadLog, long>>(read, log).Compile();
    }

    // WriteAheadLog.backgroundTaskFailure: set when the flusher, the cleaner or the applier failed,
    // after which the log refuses every operation. A wait on the flusher must not outlive it.
    private static Func<WriteAheadLog, Exception?> CompileBackgroundFailure()
    {
        var failure = typeof(WriteAheadLog).GetField("backgroundTaskFailure", BindingFlags.Instance | BindingFlags.NonPublic);
        if (failure is null || failure.FieldType != typeof(Exception))
            throw new NotSupportedException("This DotNext version reports background failures differently; DurableWriteAheadLog must be reviewed against it.");

        var log = Expression.Parameter(typeof(WriteAheadLog), "log");
        return Expression.Lambda<Func<WriteAheadLog, Exception?>>(Expression.Field(log, failure), log).Compile();
    }

    /// <summary>
    /// Why DotNext's background work on this log (flushing, cleaning, applying) failed, or null. Once
    /// set, the log refuses every operation until the node is restarted.
    /// </summary>
    internal Exception? Failure => BackgroundFailure(this);

    private void ThrowIfFlusherFailed()
    {
        if (Failure is { } failure)
            throw new IOException("The Raft log's background writer failed; this node must be restarted.", failure);
    }

    /// <summary>
    /// Installs a snapshot once DotNext's flusher has nothing left to do.
    /// </summary>
    /// <remarks>
    /// DotNext's flusher reads the snapshot index, then waits for a lock the install holds, then
    /// flushes from its first unflushed index to the log's last index using the snapshot index it
    /// read before. An install in between moves the last index to the snapshot's, far past the
    /// entries this log holds, and the flusher then reads metadata pages that were never written:
    /// it fails ("WAL page N doesn't exist on the disk"), and with it every later request to this
    /// node. A follower's flusher has work after each commit (the checkpoint file), so a snapshot
    /// arriving right after entries were committed met this. Raft's requests to a follower come one
    /// at a time, so nothing gives the flusher new work while the install waits and runs.
    /// </remarks>
    async ValueTask IAuditTrail<IRaftLogEntry>.AppendAsync<TEntry>(TEntry entry, long startIndex, CancellationToken token)
    {
        if (entry.IsSnapshot)
            await WaitUntilFlusherIdleAsync(token).ConfigureAwait(false);
        await AppendAsync(entry, startIndex, token).ConfigureAwait(false);
    }

    // Entries not yet flushed are the flusher's already; a commit index not yet in the checkpoint
    // may wait for the next commit, so the flusher is asked for a round (with every entry flushed,
    // that returns without waiting).
    private Task WaitUntilFlusherIdleAsync(CancellationToken token)
        => WaitForFlusherAsync(() => EntriesFlushed() && FlushedCommitIndex(this) == long.Max(SnapshotIndex, LastCommittedEntryIndex), EntriesFlushed, token);

    private bool EntriesFlushed() => LastEntryIndex <= SnapshotIndex || FirstUnflushedIndex(this) > LastEntryIndex;

    private long SnapshotIndex => stateMachine.Snapshot?.Index ?? 0;

    /// <summary>The most entry bytes one read for a consumer of entry contents returns (at least one entry).</summary>
    internal const long MaxBytesPerRead = 4 << 20;

    /// <summary>
    /// Reads entries for <paramref name="reader"/>, the contents of at most <see cref="MaxBytesPerRead"/>
    /// at a time. DotNext's leader reads everything a follower lacks and sends it in one request,
    /// which must finish within Raft's request timeout; a follower far behind (but not behind the
    /// compacted log) would time out on that same request again and again. Cut, the leader sends
    /// the rest in its next rounds: it records only the entries the follower stored.
    /// </summary>
    /// <remarks>
    /// A leader's replication to one follower also passes here, and its answer with it: see
    /// <see cref="HeldSnapshotCountsAsReplicatedAsync"/>.
    /// </remarks>
    public new ValueTask<TResult> ReadAsync<TResult>(ILogEntryConsumer<IRaftLogEntry, TResult> reader, long startIndex, long endIndex, CancellationToken token = default)
        => base.ReadAsync(reader.LogEntryMetadataOnly ? reader : new ReplicationRead<TResult>(reader, ((IPersistentState)this).Term, logger), startIndex, endIndex, token);

    /// <summary>
    /// A follower's refusal of a snapshot, counted as the snapshot replicated when the follower holds
    /// it already.
    /// </summary>
    /// <remarks>
    /// DotNext's follower refuses a snapshot at or below its commit index without asking the state
    /// machine, and DotNext's leader takes any refusal as a follower lacking entries: it moves its
    /// next index for that follower back one entry and, still at or below its snapshot, sends the
    /// snapshot again, a round at a time, until it takes a newer snapshot. That happens whenever the
    /// answer to an install is lost (a timeout, a paused process): the follower holds the snapshot
    /// and the leader does not know. DotNext's follower refuses a snapshot for one other reason only,
    /// a term above the leader's, which its answer carries. So a refusal in a term no higher than
    /// the leader's means the follower has committed everything through the snapshot, which Raft
    /// makes the same entries as the leader's, and the leader may go on from the entry after it.
    /// It is reported as replicated without the leader's term, which DotNext does not count toward
    /// committing the leader's own entries.
    /// </remarks>
    private static async ValueTask<TResult> HeldSnapshotCountsAsReplicatedAsync<TResult>(ValueTask<TResult> sent, long snapshotIndex, long leaderTerm, ILogger logger)
    {
        var result = await sent.ConfigureAwait(false);
        ref var answer = ref Unsafe.As<TResult, Result<ReplicationStatus>>(ref result);
        if (answer.Value.Result == HeartbeatResult.Rejected && answer.Term <= leaderTerm)
        {
            LogSnapshotHeld(logger, snapshotIndex);
            answer = answer with { Value = answer.Value with { Result = HeartbeatResult.Replicated } };
        }

        return result;
    }

    [LoggerMessage(EventId = 1109, Level = LogLevel.Information, Message = "A follower refused the snapshot at Raft index {SnapshotIndex} as one it holds already; replication to it goes on after that index")]
    private static partial void LogSnapshotHeld(ILogger logger, long snapshotIndex);

    // A read for a leader's replication (or any consumer of entry contents): entries bounded in
    // bytes, and a snapshot's answer passed through HeldSnapshotCountsAsReplicatedAsync.
    private sealed class ReplicationRead<TResult>(ILogEntryConsumer<IRaftLogEntry, TResult> reader, long leaderTerm, ILogger logger) : ILogEntryConsumer<IRaftLogEntry, TResult>
    {
        public bool LogEntryMetadataOnly => false;

        public ValueTask<TResult> ReadAsync<TEntry, TList>(TList entries, long? snapshotIndex, CancellationToken token)
            where TEntry : IRaftLogEntry
            where TList : IReadOnlyList<TEntry>
        {
            if (snapshotIndex is { } index && typeof(TResult) == typeof(Result<ReplicationStatus>))
                return HeldSnapshotCountsAsReplicatedAsync(reader.ReadAsync<TEntry, TList>(entries, snapshotIndex, token), index, leaderTerm, logger);

            var count = 1;
            for (long bytes = entries.Count == 0 ? 0 : entries[0].Length ?? 0; count < entries.Count; count++)
            {
                bytes += entries[count].Length ?? 0;
                if (bytes > MaxBytesPerRead)
                    break;
            }

            return count >= entries.Count
                ? reader.ReadAsync<TEntry, TList>(entries, snapshotIndex, token)
                : reader.ReadAsync<TEntry, Prefix<TEntry, TList>>(new Prefix<TEntry, TList>(entries, count), snapshotIndex, token);
        }
    }

    private readonly struct Prefix<TEntry, TList>(TList entries, int count) : IReadOnlyList<TEntry>
        where TList : IReadOnlyList<TEntry>
    {
        public TEntry this[int index] => (uint)index < (uint)count ? entries[index] : throw new ArgumentOutOfRangeException(nameof(index));

        public int Count => count;

        public IEnumerator<TEntry> GetEnumerator()
        {
            for (var i = 0; i < count; i++)
                yield return entries[i];
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    private sealed class TermOfFirstEntry : ILogEntryConsumer<IRaftLogEntry, long>
    {
        public static readonly TermOfFirstEntry Instance = new();

        public bool LogEntryMetadataOnly => true;

        public ValueTask<long> ReadAsync<TEntry, TList>(TList entries, long? snapshotIndex, CancellationToken token)
            where TEntry : IRaftLogEntry
            where TList : IReadOnlyList<TEntry>
            => ValueTask.FromResult(entries[0].Term);
    }

    private static TaskCompletionSource NewRound() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
            listener.Dispose();

        base.Dispose(disposing);
    }

    /// <inheritdoc/>
    protected override ValueTask DisposeAsyncCore()
    {
        listener.Dispose();
        return base.DisposeAsyncCore();
    }
}
