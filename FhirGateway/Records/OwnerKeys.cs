using Microsoft.Data.Sqlite;

namespace Health.FhirGateway.Records;

/// <summary>
/// The data keys of the owners one connection (and transaction) works with, each unwrapped from
/// the master key once, and the opening of stored resource versions with them.
/// </summary>
internal sealed class OwnerKeys(RecordStore store, SqliteConnection connection, SqliteTransaction? transaction)
{
    private readonly Dictionary<string, byte[]> keys = new(StringComparer.Ordinal);

    /// <summary>The owner's data key; a new one is made when <paramref name="create"/> and none exists.</summary>
    /// <exception cref="ResourceGoneException">The owner's records were erased.</exception>
    public byte[] For(string owner, bool create = false)
    {
        if (!keys.TryGetValue(owner, out var key))
            keys[owner] = key = store.DataKey(connection, transaction, owner, create);
        return key;
    }

    /// <summary>Decrypts a stored version's body, bound to its type, id and version.</summary>
    public StoredResource Open(string type, string id, int version, string owner, long lastUpdated, byte[] body)
        => OpenWith(For(owner), type, id, version, owner, lastUpdated, body);

    /// <summary>Decrypts a stored version's body with its owner's data key, bound to its type, id and version.</summary>
    public static StoredResource OpenWith(byte[] dataKey, string type, string id, int version, string owner, long lastUpdated, byte[] body)
        => new(type, id, version, owner, lastUpdated, RecordCipher.Open(dataKey, body, RecordCipher.ResourceBinding(type, id, version)));
}
