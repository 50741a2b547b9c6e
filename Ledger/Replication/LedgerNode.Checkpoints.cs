using Dapper;
using Health.Ledger.Checkpoints;
using Microsoft.Extensions.Logging;

namespace Health.Ledger.Replication;

public sealed partial class LedgerNode
{
    /// <summary>
    /// The receipt for an entry: its bytes, its inclusion proof and the first checkpoint that covers it.
    /// </summary>
    /// <returns>Null when the entry exists but no checkpoint covers it yet.</returns>
    /// <exception cref="ArgumentOutOfRangeException">No entry has that index.</exception>
    public Receipt? GetReceipt(long index)
    {
        var entry = Store.ReadEntryBytes(index, 1);
        if (index < 1 || entry.Count == 0 || index > Tree.Size)
            throw new ArgumentOutOfRangeException(nameof(index), "No entry has that index.");
        if (Store.FindCheckpointCovering(index) is not { } checkpointIndex
            || Store.ReadEntry(checkpointIndex) is not { } checkpointEntry)
            return null;
        var checkpoint = SignedCheckpoint.FromFields(checkpointEntry.Fields);
        return new Receipt(entry[0], Tree.ProveInclusion(index - 1, checkpoint.TreeSize), checkpoint);
    }

    private async Task RunCheckpointerAsync(CancellationToken token)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100), options.TimeProvider);
        var lastSigned = options.TimeProvider.GetTimestamp();
        try
        {
            while (await timer.WaitForNextTickAsync(token).ConfigureAwait(false))
            {
                try
                {
                    if (IsLeader && await CheckpointIfDueAsync(options.TimeProvider.GetElapsedTime(lastSigned), token).ConfigureAwait(false))
                        lastSigned = options.TimeProvider.GetTimestamp();
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Whatever went wrong (the ledger busy, the projection being replaced), the next
                    // tick tries again: a leader must never stop signing checkpoints.
                    LogCheckpointFailed(logger, Tree.Size, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
    }

    // Signs and appends a checkpoint when enough entries or enough time have passed since the last one.
    private async Task<bool> CheckpointIfDueAsync(TimeSpan sinceLastSigned, CancellationToken token)
    {
        var size = Tree.Size;
        var (coveredSize, checkpointIndex) = LatestCheckpoint();
        if (!IsCheckpointDue(size, coveredSize, checkpointIndex, sinceLastSigned, options.CheckpointEveryEntries, options.CheckpointInterval))
            return false;

        // The signer's certificate goes on the ledger first, so the checkpoint covers it.
        if (await RecordSignerCertificateAsync(token).ConfigureAwait(false))
            size = Tree.Size;
        var checkpoint = SignedCheckpoint.Sign(size, Tree.Root(size), NodeId, SigningKey);
        var result = await AppendAsync(checkpoint.ToCommand(), token).ConfigureAwait(false);
        metrics.RecordCheckpoint(size - coveredSize);
        LogCheckpoint(logger, size, result.Index);
        return true;
    }

    /// <summary>
    /// Whether a new checkpoint is due: enough entries since the latest one, or any entry it does not
    /// cover (apart from its own entry) once the interval has passed. An append that lands while a
    /// checkpoint is being signed sits before the checkpoint's entry yet outside what it covers.
    /// </summary>
    internal static bool IsCheckpointDue(long treeSize, long coveredSize, long checkpointIndex, TimeSpan sinceLastSigned, long everyEntries, TimeSpan interval)
    {
        var uncovered = treeSize - coveredSize - (checkpointIndex > coveredSize ? 1 : 0);
        return treeSize - coveredSize >= everyEntries || (uncovered > 0 && sinceLastSigned >= interval);
    }

    // Before its first checkpoint, a node with a consortium certificate puts that certificate on the
    // ledger: the certificate's key is the checkpoint key, so an offline verifier trusts checkpoints
    // through the consortium CA alone.
    private async Task<bool> RecordSignerCertificateAsync(CancellationToken token)
    {
        if (options.Identity is not { } identity || signerRecorded)
            return false;
        using (var connection = Store.OpenReader())
        {
            signerRecorded = connection.ExecuteScalar<long>(
                "SELECT COUNT(*) FROM signer_keys WHERE key_id = @KeyId", new { SigningKey.KeyId }) > 0;
        }

        if (signerRecorded)
            return false;
        await AppendAsync(new Entries.LedgerCommand(Entries.LedgerEntryKinds.SignerCertificate.Name, new Dictionary<string, string>
        {
            ["nodeId"] = NodeId,
            ["keyId"] = SigningKey.KeyId,
            ["certificate"] = identity.Certificate.ExportCertificatePem(),
        }), token).ConfigureAwait(false);
        signerRecorded = true;
        return true;
    }

    private bool signerRecorded;

    private (long TreeSize, long Index) LatestCheckpoint()
    {
        using var connection = Store.OpenReader();
        return connection.QuerySingleOrDefault<(long, long)?>("SELECT tree_size, idx FROM checkpoints ORDER BY tree_size DESC LIMIT 1") ?? (0, 0);
    }

    [LoggerMessage(EventId = 1003, Level = LogLevel.Debug, Message = "Checkpoint of tree size {TreeSize} recorded at ledger index {LedgerIndex}")]
    private static partial void LogCheckpoint(ILogger logger, long treeSize, long ledgerIndex);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "Checkpoint of tree size {TreeSize} not recorded: {Reason}")]
    private static partial void LogCheckpointFailed(ILogger logger, long treeSize, string reason);
}
