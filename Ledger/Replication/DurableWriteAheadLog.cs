using DotNext.IO.Log;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace Health.Ledger.Replication;

/// <summary>
/// DotNext's write-ahead log, except that entries a leader replicates to this node are on disk
/// before the node acknowledges them.
/// </summary>
/// <remarks>
/// <para>
/// Raft counts an entry as committed once a majority has stored it. DotNext's follower answers
/// <c>AppendEntries</c> as soon as the entries are in mapped memory; its background flusher writes
/// them and the checkpoint (commit and last index) a moment later, and after a crash the log keeps
/// only what that checkpoint covers. A leader could therefore commit and apply an entry that, after
/// every node is killed at once, no majority kept; the group then writes another entry at that
/// index and the old leader, which treats its copy as committed, never converges.
/// </para>
/// <para>
/// The follower path (the one overload DotNext calls with entries from the leader) now waits for
/// the flusher to cover what it appended. The leader's own commit already waits for its flush, so
/// a committed entry is on the disk of a majority. Only this one caller waits on the flusher at a
/// time: DotNext handles <c>AppendEntries</c> one at a time, and its flush notification admits a
/// single waiter.
/// </para>
/// </remarks>
internal sealed class DurableWriteAheadLog(WriteAheadLog.Options options, IStateMachine stateMachine)
    : WriteAheadLog(options, stateMachine), IAuditTrail<IRaftLogEntry>
{
    async ValueTask IAuditTrail<IRaftLogEntry>.AppendAsync<TEntry>(ILogEntryProducer<TEntry> entries, long startIndex, bool skipCommitted, CancellationToken token)
    {
        await AppendAsync(entries, startIndex, skipCommitted, token).ConfigureAwait(false);
        await FlushAsync(token).ConfigureAwait(false);
    }
}
