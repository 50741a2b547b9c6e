using System.Security.Cryptography;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Health.FhirGateway.Records;

/// <summary>
/// Replaces a stopped node's master key: every data key is unwrapped with the old key and wrapped
/// with the new one in one SQLite transaction; bodies, sealed under the data keys, are untouched.
/// The new key is written beside the old one first, so an interrupted rotation is finished by
/// running it again (whichever key opens the data keys wins) and no key is ever lost.
/// </summary>
public static class MasterKeyRotation
{
    /// <summary>Rotates the master key of the node in <paramref name="dataDirectory"/>.</summary>
    /// <returns>How many data keys were re-wrapped.</returns>
    /// <exception cref="InvalidOperationException">The node's keys or records are not as expected.</exception>
    public static int Rotate(string dataDirectory)
    {
        var keys = Path.Combine(dataDirectory, "keys");
        var current = Path.Combine(keys, "master.key");
        var next = Path.Combine(keys, "master.key.next");
        var records = Path.Combine(dataDirectory, "records", "records.db");
        var oldKey = Read(current);
        if (File.Exists(next) && Opens(records, Read(next)))
        {
            // A previous rotation committed but did not swap the files: finish it.
            Swap(current, next, Path.Combine(keys, "master.key.previous"));
            return 0;
        }

        if (!Opens(records, oldKey))
            throw new InvalidOperationException("keys/master.key does not open this node's data keys.");
        var newKey = RandomNumberGenerator.GetBytes(32);
        Health.Ledger.Storage.KeyFiles.ReadOrCreate(next, () => Convert.ToBase64String(newKey));
        newKey = Read(next);

        int rewrapped;
        using (var connection = new SqliteConnection($"Data Source={records};Pooling=False"))
        {
            connection.Open();
            using var transaction = connection.BeginTransaction();
            var rows = connection.Query<(string Owner, byte[] Wrapped)>("SELECT owner, wrapped FROM data_keys WHERE wrapped IS NOT NULL", transaction: transaction).AsList();
            foreach (var (owner, wrapped) in rows)
            {
                var dataKey = RecordCipher.Open(oldKey, wrapped, RecordCipher.KeyBinding(owner));
                connection.Execute("UPDATE data_keys SET wrapped = @wrapped WHERE owner = @owner",
                    new { owner, wrapped = RecordCipher.Seal(newKey, dataKey, RecordCipher.KeyBinding(owner)) }, transaction);
            }

            transaction.Commit();
            rewrapped = rows.Count;
        }

        Swap(current, next, Path.Combine(keys, "master.key.previous"));
        return rewrapped;
    }

    private static byte[] Read(string path)
    {
        try
        {
            var key = Convert.FromBase64String(File.ReadAllText(path).Trim());
            return key.Length == 32 ? key : throw new InvalidOperationException($"{path} does not hold a 32-byte key.");
        }
        catch (FormatException)
        {
            throw new InvalidOperationException($"{path} is not base64.");
        }
    }

    private static bool Opens(string records, byte[] key)
    {
        using var connection = new SqliteConnection($"Data Source={records};Mode=ReadOnly;Pooling=False");
        connection.Open();
        var row = connection.QueryFirstOrDefault<(string Owner, byte[] Wrapped)?>("SELECT owner, wrapped FROM data_keys WHERE wrapped IS NOT NULL LIMIT 1");
        if (row is not { } sample)
            return true;
        try
        {
            RecordCipher.Open(key, sample.Wrapped, RecordCipher.KeyBinding(sample.Owner));
            return true;
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    private static void Swap(string current, string next, string previous)
    {
        File.Copy(current, previous, overwrite: true);
        File.Move(next, current, overwrite: true);
    }
}
