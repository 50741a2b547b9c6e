using System.Text.Json;
using Dapper;
using Health.Consent.Projection;
using Health.Ledger.Checkpoints;
using Health.Ledger.Entries;
using Health.Ledger.Merkle;
using Health.Ledger.Replication;

namespace Health.FhirGateway.Audit;

/// <summary>
/// Writes an audit export folder from this node's applied ledger, streaming entry by entry so
/// memory does not grow with the ledger: every entry up to the newest checkpoint, the AuditEvents
/// the filter selects with an inclusion proof each, every checkpoint with consistency proofs
/// between successive ones, and the certificates of the checkpoint signers.
/// </summary>
public sealed class AuditExporter(LedgerNode node, ConsentLedger consents)
{
    /// <summary>Writes the export into <paramref name="folder"/>; the manifest is written last.</summary>
    /// <returns>The manifest.</returns>
    /// <exception cref="InvalidOperationException">The ledger has no checkpoint yet.</exception>
    public async Task<AuditManifest> WriteAsync(string folder, AuditFilter filter, CancellationToken token)
    {
        Directory.CreateDirectory(folder);
        var latest = node.Store.FindLatestCheckpoint() is { } checkpointIndex && node.Store.ReadEntry(checkpointIndex) is { } checkpointEntry
            ? SignedCheckpoint.FromFields(checkpointEntry.Fields)
            : throw new InvalidOperationException("The ledger has no checkpoint yet; try again in a second.");
        var treeSize = latest.TreeSize;
        long events = 0;
        using (var entries = Open(folder, AuditExportFiles.Entries))
        using (var auditEvents = Open(folder, AuditExportFiles.AuditEvents))
        using (var proofs = Open(folder, AuditExportFiles.Proofs))
        {
            foreach (var (index, body, decision) in consents.EntriesWithDecisions(treeSize))
            {
                token.ThrowIfCancellationRequested();
                await WriteLineAsync(entries, new { index, canonical = Convert.ToBase64String(body) }, token).ConfigureAwait(false);
                var entry = LedgerEntry.FromCanonicalBytes(body);
                if (!filter.Matches(entry))
                    continue;
                var leaf = MerkleHash.Leaf(body);
                await auditEvents.WriteAsync(AuditEventWriter.Write(entry, leaf, decision), token).ConfigureAwait(false);
                auditEvents.WriteByte((byte)'\n');
                var proof = node.Tree.ProveInclusion(index - 1, treeSize);
                await WriteLineAsync(proofs, new { index, treeSize, path = proof.Path.Select(Convert.ToHexStringLower) }, token).ConfigureAwait(false);
                events++;
            }
        }

        var checkpoints = ReadCheckpoints(treeSize);
        using (var output = Open(folder, AuditExportFiles.Checkpoints))
        {
            foreach (var (index, checkpoint) in checkpoints)
                await WriteLineAsync(output, new { index, treeSize = checkpoint.TreeSize, root = Convert.ToHexStringLower(checkpoint.Root), checkpoint.Signer, checkpoint.KeyId, signature = Convert.ToBase64String(checkpoint.Signature) }, token).ConfigureAwait(false);
        }

        using (var output = Open(folder, AuditExportFiles.Consistency))
        {
            for (var i = 1; i < checkpoints.Count; i++)
            {
                var (from, to) = (checkpoints[i - 1].Checkpoint.TreeSize, checkpoints[i].Checkpoint.TreeSize);
                var proof = node.Tree.ProveConsistency(from, to);
                await WriteLineAsync(output, new { from, to, path = proof.Path.Select(Convert.ToHexStringLower) }, token).ConfigureAwait(false);
            }
        }

        using (var output = Open(folder, AuditExportFiles.Signers))
        {
            using var connection = node.Store.OpenReader();
            foreach (var body in connection.Query<byte[]>("SELECT body FROM entries WHERE kind = @kind ORDER BY idx", new { kind = LedgerEntryKinds.SignerCertificate.Name }))
            {
                var fields = LedgerEntry.FromCanonicalBytes(body).Fields;
                await WriteLineAsync(output, new { nodeId = fields["nodeId"], certificate = fields["certificate"] }, token).ConfigureAwait(false);
            }
        }

        var manifest = new AuditManifest(AuditExportFiles.Format, node.NodeId, treeSize, filter, events, checkpoints.Count);
        await File.WriteAllTextAsync(Path.Combine(folder, AuditExportFiles.Manifest), JsonSerializer.Serialize(manifest, AuditManifest.Json), token).ConfigureAwait(false);
        return manifest;
    }

    // The checkpoints covering sizes up to treeSize, smallest first.
    private List<(long Index, SignedCheckpoint Checkpoint)> ReadCheckpoints(long treeSize)
    {
        using var connection = node.Store.OpenReader();
        return connection.Query<long>("SELECT idx FROM checkpoints WHERE tree_size <= @treeSize ORDER BY tree_size", new { treeSize })
            .Select(index => (index, SignedCheckpoint.FromFields(node.Store.ReadEntry(index)!.Fields)))
            .ToList();
    }

    private static FileStream Open(string folder, string name)
        => new(Path.Combine(folder, name), FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16, FileOptions.Asynchronous);

    private static async Task WriteLineAsync(FileStream stream, object value, CancellationToken token)
    {
        await JsonSerializer.SerializeAsync(stream, value, AuditManifest.Json, token).ConfigureAwait(false);
        stream.WriteByte((byte)'\n');
    }
}
