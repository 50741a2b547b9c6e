using System.Net.Http.Headers;
using System.Threading.Channels;
using DotNext.Net.Cluster.Consensus.Raft;
using Health.Ledger.Entries;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace Health.Ledger.Replication;

public sealed partial class LedgerNode
{
    /// <summary>Path of the members-only endpoint a follower forwards batches to.</summary>
    public const string ReplicatePath = "/internal/ledger/replicate";

    private readonly Channel<PendingAppend> appendQueue;
    private readonly SemaphoreSlim inFlight;
    private readonly ResiliencePipeline retry;

    /// <summary>
    /// Appends a command and returns once it is committed by a majority and applied on this node.
    /// Concurrent appends share Raft entries (group commit). A command is recorded at most once, even
    /// when leadership changes while it is being replicated.
    /// </summary>
    /// <exception cref="LedgerUnavailableException">It could not be committed within the append timeout.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="token"/> was cancelled; the command may still be recorded.</exception>
    public async Task<AppendResult> AppendAsync(LedgerCommand command, CancellationToken token)
    {
        var started = options.TimeProvider.GetTimestamp();
        var pending = new PendingAppend(command, new TaskCompletionSource<AppendResult>(TaskCreationOptions.RunContinuationsAsynchronously));
        await appendQueue.Writer.WriteAsync(pending, token).ConfigureAwait(false);
        AppendResult result;
        try
        {
            // The batch gives up after the append timeout; this bounds the wait even if it never started.
            result = await pending.Completion.Task.WaitAsync(options.AppendTimeout * 2, options.TimeProvider, token).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            throw new LedgerUnavailableException($"The append was not committed within {options.AppendTimeout.TotalSeconds * 2:0} s.", e);
        }

        metrics.RecordAppend(options.TimeProvider.GetElapsedTime(started));
        return result;
    }

    /// <summary>
    /// Accepts a batch a follower forwarded: stamps it with this leader's clock and replicates it.
    /// Returns once it is committed.
    /// </summary>
    /// <exception cref="FormatException">The bytes are not an encoded batch.</exception>
    /// <exception cref="LedgerUnavailableException">This node is not the leader.</exception>
    public async Task AcceptForwardedBatchAsync(byte[] encoded, CancellationToken token)
    {
        CommandBatch.Decode(encoded);
        await ReplicateAsLeaderAsync(encoded, token).ConfigureAwait(false);

        // The follower that forwarded it answers its client once it applies the batch: carry the new
        // commit index to it now rather than at the next heartbeat.
        try
        {
            await cluster.ForceReplicationAsync(token).ConfigureAwait(false);
        }
        catch (NotLeaderException)
        {
        }
    }

    private async Task RunAppenderAsync(CancellationToken token)
    {
        var reader = appendQueue.Reader;
        try
        {
            while (await reader.WaitToReadAsync(token).ConfigureAwait(false))
            {
                // Waiting for a free slot before draining the queue is what groups commands:
                // while every slot is busy, appends pile up and leave together.
                await inFlight.WaitAsync(token).ConfigureAwait(false);
                var batch = new List<PendingAppend>();
                while (batch.Count < options.MaxBatchCommands && reader.TryRead(out var pending))
                    batch.Add(pending);
                if (batch.Count == 0)
                {
                    inFlight.Release();
                    continue;
                }

                _ = ReplicateBatchAsync(batch, token);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }

        while (reader.TryRead(out var left))
            left.Completion.TrySetException(new LedgerUnavailableException("The node is shutting down."));
    }

    // The batch's slot is freed once the batch is committed, not once it is applied: the next
    // batch's Raft round (the followers' flushes) then runs while this node applies this one.
    private async Task ReplicateBatchAsync(List<PendingAppend> batch, CancellationToken token)
    {
        var slot = new InFlightSlot(inFlight);
        try
        {
            var commands = new CommandBatch(Guid.NewGuid(), 0, batch.ConvertAll(static p => p.Command));
            var (first, _) = await ReplicateAndWaitAsync(commands.Encode(), commands.Id, slot.Release, token).ConfigureAwait(false);
            for (var i = 0; i < batch.Count; i++)
                batch[i].Completion.TrySetResult(new AppendResult(first + i, Tree.LeafHash(first + i - 1)));
        }
        catch (Exception e)
        {
            var failure = e as LedgerUnavailableException ?? new LedgerUnavailableException("The append was not committed.", e);
            foreach (var pending in batch)
                pending.Completion.TrySetException(failure);
        }
        finally
        {
            slot.Release();
        }
    }

    // One batch's hold on a slot of `inFlight`, given back once, whichever comes first: its commit
    // or the end of its wait.
    private sealed class InFlightSlot(SemaphoreSlim inFlight)
    {
        private int released;

        public void Release()
        {
            if (Interlocked.Exchange(ref released, 1) == 0)
                inFlight.Release();
        }
    }

    private async Task<(long First, int Count)> ReplicateAndWaitAsync(byte[] encoded, Guid batchId, Action committed, CancellationToken token)
    {
        var applied = stateMachine.WaitForBatch(batchId, committed);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(token);
        deadline.CancelAfter(options.AppendTimeout);
        try
        {
            await retry.ExecuteAsync(
                async ct =>
                {
                    if (!applied.IsCompleted)
                        await SendToLeaderAsync(encoded, ct).ConfigureAwait(false);
                },
                deadline.Token).ConfigureAwait(false);

            // The leader answered after commit; this node applies it once it learns the commit index.
            // Committed means on the disk of a majority (DurableWriteAheadLog), so applied here is enough.
            return await applied.WaitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!token.IsCancellationRequested)
        {
            throw new LedgerUnavailableException($"The append was not committed within {options.AppendTimeout.TotalSeconds:0} s.", e);
        }
        finally
        {
            stateMachine.ForgetBatch(batchId);
        }
    }

    private async Task SendToLeaderAsync(byte[] encoded, CancellationToken token)
    {
        if (IsLeader)
        {
            await ReplicateAsLeaderAsync(encoded, token).ConfigureAwait(false);
            return;
        }

        var leader = MemberAt(cluster.Leader?.EndPoint) ?? throw new LedgerUnavailableException("No leader is known.");
        using var content = new ByteArrayContent(encoded);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await peerClient.PostAsync(new Uri(leader.HttpUrl, ReplicatePath), content, token).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw new LedgerUnavailableException($"The leader {leader.NodeId} answered {(int)response.StatusCode}.");
    }

    private async Task ReplicateAsLeaderAsync(byte[] encoded, CancellationToken token)
    {
        // The entry carries the term of this node's leadership, checked against the log. DotNext's
        // ReplicateAsync(payload) would tag it with the node's current term, which a message of a
        // newer term (the new leader's first append, a vote request) raises a few milliseconds
        // before this node stops leading: a leader thawed after another was elected then appended
        // and committed an entry of the new term at an index where the new leader had written
        // another entry of that same term, and the two ledgers parted (found by the fault schedules). A leader's newest entry is always
        // one of its own term (its election entry or later), so a term that differs from it is a
        // term this node does not lead. The term is read before the leadership, so that a raise in
        // between is caught by the comparison.
        var term = cluster.Term;
        if (!IsLeader || await log.LastEntryTermAsync(token).ConfigureAwait(false) != term)
            throw new LedgerUnavailableException("This node is not the leader.");
        CommandBatch.Stamp(encoded, options.TimeProvider.GetUtcNow().ToUnixTimeMilliseconds());
        try
        {
            // Bounded by the caller's deadline even where DotNext's own wait for the commit is not.
            await cluster.ReplicateAsync(new BinaryLogEntry { Term = term, Content = encoded }, token).AsTask().WaitAsync(token).ConfigureAwait(false);
        }
        catch (NotLeaderException e)
        {
            throw new LedgerUnavailableException("This node lost its leadership while replicating.", e);
        }
    }

    private ResiliencePipeline CreateRetryPipeline() => new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            // Every failure short of the caller's deadline is worth retrying: the batch id makes a
            // repeated proposal harmless.
            ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Exception is not null && !args.Context.CancellationToken.IsCancellationRequested),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(20),
            MaxDelay = TimeSpan.FromMilliseconds(500),
            UseJitter = true,
            OnRetry = args =>
            {
                if (args.AttemptNumber % 10 == 9)
                    LogAppendRetrying(logger, args.AttemptNumber + 1, args.Outcome.Exception is { } e ? $"{e.GetType().Name}: {e.Message}" : null);
                return ValueTask.CompletedTask;
            },
        })
        .Build();

    private sealed record PendingAppend(LedgerCommand Command, TaskCompletionSource<AppendResult> Completion);

    // The failure's message is this node's own text or a connection error naming a member's
    // address; a command's fields never reach it.
    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "Append still not accepted after {Attempts} attempts ({Failure})")]
    private static partial void LogAppendRetrying(ILogger logger, int attempts, string? failure);
}
