using Health.Ledger.Entries;
using Microsoft.Extensions.Logging;

namespace Health.Ledger.Replication;

public sealed partial class LedgerNode
{
    /// <summary>
    /// Whether this node lost its Raft log and has not yet caught up with its group: until then it
    /// neither votes nor stands for election (<see cref="RaftStateLoss"/>).
    /// </summary>
    public bool IsRecovering => log.RefusesVotes;

    // A member that lost its log has caught up once an entry it proposed after starting is in its
    // own log, committed and applied: the leader that appended it held every entry committed
    // before, and this log now equals the leader's up to it (or holds a snapshot that covers it).
    // Only then may its log decide whom it votes for.
    private async Task RunRecoveryAsync(string reason, CancellationToken token)
    {
        LogRecovering(logger, reason);
        var recovered = new LedgerCommand(LedgerEntryKinds.MemberRecovered.Name, new Dictionary<string, string>
        {
            ["nodeId"] = NodeId,
            ["reason"] = reason,
        });
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    var result = await AppendAsync(recovered, token).ConfigureAwait(false);
                    RaftStateLoss.Clear(options.DataDirectory);
                    log.RefusesVotes = false;
                    await cluster.RevertToNormalModeAsync(token).ConfigureAwait(false);
                    LogRecovered(logger, result.Index);
                    return;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Whatever stops the entry now (no leader, the group busy, the projection being
                    // replaced by a snapshot), the node must not stay out of the vote for good.
                    LogStillRecovering(logger, attempt, e.Message);
                    await Task.Delay(options.RaftRequestTimeout, options.TimeProvider, token).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(EventId = 1012, Level = LogLevel.Warning, Message = "This node lost its Raft state ({Reason}); it neither votes nor stands for election until it has caught up with the group")]
    private static partial void LogRecovering(ILogger logger, string reason);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Information, Message = "Caught up with the group at ledger index {LedgerIndex}; this node votes and may lead again")]
    private static partial void LogRecovered(ILogger logger, long ledgerIndex);

    [LoggerMessage(EventId = 1014, Level = LogLevel.Warning, Message = "Still catching up after losing the Raft state, attempt {Attempt}: {Failure}. A group whose members were all restored from one backup must be restored with --new-group")]
    private static partial void LogStillRecovering(ILogger logger, int attempt, string failure);

    [LoggerMessage(EventId = 1015, Level = LogLevel.Warning, Message = "This node lost its Raft state ({Reason}) but is its group's only member; it goes on with the ledger it holds")]
    private static partial void LogSoleMemberLostState(ILogger logger, string reason);
}
