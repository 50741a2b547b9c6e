using System.IO.Compression;
using System.Text.Json;
using Dapper;
using Health.FhirGateway.Records;
using Health.Ledger.Replication;
using Microsoft.Data.Sqlite;

namespace Health.FhirGateway.Operations;

/// <summary>
/// Online backups of a node and their restore into an empty data directory. A backup is a zip of
/// consistent copies of the ledger projection (every entry, with the consent and governance
/// state) and the record store, each taken in one read transaction while the node keeps running.
/// Records stay encrypted and no key is in the file: restoring needs the node's master key.
/// </summary>
public static class NodeBackup
{
    private const string LedgerEntry = "ledger.db";
    private const string RecordsEntry = "records.db";
    private const string ManifestEntry = "backup.json";

    /// <summary>What a backup holds.</summary>
    /// <param name="Node">The node it was taken from.</param>
    /// <param name="TreeSize">Ledger entries in it.</param>
    /// <param name="Taken">When, UTC.</param>
    public sealed record Manifest(string Node, long TreeSize, DateTimeOffset Taken);

    /// <summary>Writes a backup of the running node to <paramref name="destination"/>.</summary>
    public static async Task<Manifest> WriteAsync(LedgerNode node, RecordStore store, Stream destination, string scratch, CancellationToken token)
    {
        Directory.CreateDirectory(scratch);
        var ledgerCopy = Path.Combine(scratch, LedgerEntry);
        var recordsCopy = Path.Combine(scratch, RecordsEntry);
        try
        {
            using (var connection = node.Store.OpenReader())
                connection.Execute("VACUUM INTO @ledgerCopy", new { ledgerCopy });
            using (var connection = store.Open())
                connection.Execute("VACUUM INTO @recordsCopy", new { recordsCopy });
            var manifest = new Manifest(node.NodeId, CountEntries(ledgerCopy), DateTimeOffset.UtcNow);
            using (var zip = new ZipArchive(destination, ZipArchiveMode.Create, leaveOpen: true))
            {
                await zip.CreateEntryFromFileAsync(ledgerCopy, LedgerEntry, CompressionLevel.Fastest, token).ConfigureAwait(false);
                await zip.CreateEntryFromFileAsync(recordsCopy, RecordsEntry, CompressionLevel.Fastest, token).ConfigureAwait(false);
                var entry = zip.CreateEntry(ManifestEntry);
                var stream = await entry.OpenAsync(token).ConfigureAwait(false);
                await using (stream.ConfigureAwait(false))
                    await JsonSerializer.SerializeAsync(stream, manifest, cancellationToken: token).ConfigureAwait(false);
            }

            return manifest;
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Delete(ledgerCopy);
            File.Delete(recordsCopy);
        }
    }

    /// <summary>
    /// Restores a backup into an empty data directory. The restored projection forgets its Raft
    /// position: replayed log entries are recognised by their batch ids and skipped, so the node
    /// can rejoin its group, or a whole group restored from one backup can start a new log.
    /// </summary>
    /// <param name="backupFile">A file written by <see cref="WriteAsync"/>.</param>
    /// <param name="dataDirectory">An empty data directory.</param>
    /// <param name="masterKey">The node's master key.</param>
    /// <param name="newGroup">
    /// Whether every member of the group is restored from this same backup to start a new Raft log.
    /// Otherwise the node rejoins its running group, and until it has caught up with it, neither
    /// votes nor stands for election (<see cref="RaftStateLoss"/>).
    /// </param>
    /// <exception cref="InvalidOperationException">The directory is not empty, the file is not a backup, or the master key does not open its records.</exception>
    public static Manifest Restore(string backupFile, string dataDirectory, byte[] masterKey, bool newGroup)
    {
        if (Directory.Exists(dataDirectory) && Directory.EnumerateFileSystemEntries(dataDirectory).Any())
            throw new InvalidOperationException($"{dataDirectory} is not empty; restore into an empty data directory.");
        using var zip = ZipFile.OpenRead(backupFile);
        var manifestEntry = zip.GetEntry(ManifestEntry) ?? throw new InvalidOperationException("The file is not a node backup.");
        Manifest manifest;
        using (var stream = manifestEntry.Open())
            manifest = JsonSerializer.Deserialize<Manifest>(stream) ?? throw new InvalidOperationException("The backup's manifest is empty.");

        var ledger = Path.Combine(dataDirectory, "ledger", LedgerEntry);
        var records = Path.Combine(dataDirectory, "records", RecordsEntry);
        Directory.CreateDirectory(Path.GetDirectoryName(ledger)!);
        Directory.CreateDirectory(Path.GetDirectoryName(records)!);
        (zip.GetEntry(LedgerEntry) ?? throw new InvalidOperationException("The backup holds no ledger.")).ExtractToFile(ledger);
        (zip.GetEntry(RecordsEntry) ?? throw new InvalidOperationException("The backup holds no records.")).ExtractToFile(records);
        using (var connection = new SqliteConnection($"Data Source={ledger};Pooling=False"))
        {
            connection.Open();
            connection.Execute("UPDATE state SET raft_index = 0 WHERE id = 1");
        }

        CheckMasterKey(records, masterKey);
        if (!newGroup)
            RaftStateLoss.Mark(Path.GetDirectoryName(ledger)!, $"restored from a backup of {manifest.Node} taken {manifest.Taken:u}");
        var keys = Directory.CreateDirectory(Path.Combine(dataDirectory, "keys"));
        Health.Ledger.Storage.KeyFiles.ReadOrCreate(Path.Combine(keys.FullName, "master.key"), () => Convert.ToBase64String(masterKey));
        return manifest;
    }

    private static long CountEntries(string ledger)
    {
        using var connection = new SqliteConnection($"Data Source={ledger};Mode=ReadOnly;Pooling=False");
        connection.Open();
        return connection.ExecuteScalar<long>("SELECT COUNT(*) FROM entries");
    }

    // One live data key must open under the given master key, or the restored records are unreadable.
    private static void CheckMasterKey(string records, byte[] masterKey)
    {
        using var connection = new SqliteConnection($"Data Source={records};Mode=ReadOnly;Pooling=False");
        connection.Open();
        var row = connection.QueryFirstOrDefault<(string Owner, byte[] Wrapped)?>("SELECT owner, wrapped FROM data_keys WHERE shredded = 0 AND wrapped IS NOT NULL LIMIT 1");
        if (row is not { } key)
            return;
        try
        {
            RecordCipher.Open(masterKey, key.Wrapped, RecordCipher.KeyBinding(key.Owner));
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            throw new InvalidOperationException("The master key given does not open this backup's records.");
        }
    }
}
