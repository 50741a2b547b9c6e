using System.Globalization;
using DotNext.Net.Cluster.Consensus.Raft;

namespace Health.Ledger.Replication;

public sealed partial class LedgerNode
{
    /// <summary>Path of the members-only long poll that answers once a Raft index is on this node's disk.</summary>
    public const string DurablePath = "/internal/ledger/durable";

    private static readonly TimeSpan DurablePollTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Returns once this node has applied <paramref name="raftIndex"/>. Applying writes the entries
    /// into the SQLite projection with <c>synchronous = FULL</c>, so they are then on this node's disk.
    /// </summary>
    /// <returns>The Raft index now applied.</returns>
    /// <remarks>
    /// DotNext's own <c>WriteAheadLog.FlushAsync</c> is not used here: it waits on a single-waiter
    /// event that the log's commit path also uses, and calling it from request threads crashed the process.
    /// </remarks>
    public async Task<long> WaitDurableAsync(long raftIndex, CancellationToken token)
    {
        await log.WaitForApplyAsync(raftIndex, token).ConfigureAwait(false);
        return log.LastAppliedIndex;
    }

    // A follower acknowledges AppendEntries with the entries only in mapped memory; DotNext flushes
    // them after commit. Answering a client only once a majority has applied them (fsync in SQLite)
    // means an acknowledged append is on the disk of a majority, not only in their page caches.
    private async Task EnsureMajorityDurableAsync(long raftIndex, CancellationToken token)
    {
        var members = Members;
        var needed = (members.Count / 2) + 1;
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(token);
        var pending = members.Select(m => m.NodeId == NodeId
            ? WaitDurableAsync(raftIndex, cancel.Token).ContinueWith(static t => t.IsCompletedSuccessfully, TaskScheduler.Default)
            : PeerDurableAsync(m, raftIndex, cancel.Token)).ToList();
        var durable = 0;
        try
        {
            while (pending.Count > 0 && durable < needed)
            {
                var done = await Task.WhenAny(pending).ConfigureAwait(false);
                pending.Remove(done);
                if (await done.ConfigureAwait(false))
                    durable++;
            }
        }
        finally
        {
            await cancel.CancelAsync().ConfigureAwait(false);
        }

        token.ThrowIfCancellationRequested();
        if (durable < needed)
            throw new LedgerUnavailableException($"Only {durable} of {members.Count} members confirmed the append on disk.");
    }

    private async Task<bool> PeerDurableAsync(LedgerMember member, long raftIndex, CancellationToken token)
    {
        var uri = new Uri(member.HttpUrl, $"{DurablePath}?index={raftIndex.ToString(CultureInfo.InvariantCulture)}");
        while (!token.IsCancellationRequested)
        {
            try
            {
                using var response = await peerClient.GetAsync(uri, token).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                    return true;
            }
            catch (HttpRequestException)
            {
                return false;
            }
            catch (OperationCanceledException) when (!token.IsCancellationRequested)
            {
                // the peer's long poll outlived the client timeout; ask again
            }

            // The leader tells followers the new commit index on its next round; ask it for one now.
            if (IsLeader)
                await ForceReplicationQuietlyAsync(token).ConfigureAwait(false);
        }

        return false;
    }

    /// <summary>The long poll behind <see cref="DurablePath"/>: true when durable within the poll timeout.</summary>
    public async Task<bool> PollDurableAsync(long raftIndex, CancellationToken token)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
        timeout.CancelAfter(DurablePollTimeout);
        try
        {
            await WaitDurableAsync(raftIndex, timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!token.IsCancellationRequested)
        {
            return false;
        }
    }

    private async Task ForceReplicationQuietlyAsync(CancellationToken token)
    {
        try
        {
            await cluster.ForceReplicationAsync(token).ConfigureAwait(false);
        }
        catch (NotLeaderException)
        {
        }
    }
}
