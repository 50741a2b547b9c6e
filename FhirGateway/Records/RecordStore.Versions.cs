using Dapper;

namespace Health.FhirGateway.Records;

public sealed partial class RecordStore
{
    /// <summary>The current version, owner and deleted flag of a resource, or null when unknown.</summary>
    public (int Version, string Owner, bool Deleted)? Current(string type, string id)
    {
        using var connection = Open();
        return connection.QuerySingleOrDefault<(int, string, bool)?>(
            "SELECT version, owner, deleted FROM current WHERE type = @type AND id = @id", new { type, id });
    }

    /// <summary>Records a deletion as a new version without a body.</summary>
    /// <returns>The deletion's version number.</returns>
    public int Delete(string type, string id, int currentVersion, long now)
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction();
        var version = currentVersion + 1;
        connection.Execute("INSERT INTO versions(type, id, version, last_updated, deleted, body) VALUES (@type, @id, @version, @now, 1, NULL)",
            new { type, id, version, now }, transaction);
        connection.Execute("UPDATE current SET version = @version, last_updated = @now, deleted = 1 WHERE type = @type AND id = @id",
            new { type, id, version, now }, transaction);
        connection.Execute("DELETE FROM search_tokens WHERE type = @type AND id = @id", new { type, id }, transaction);
        connection.Execute("DELETE FROM search_dates WHERE type = @type AND id = @id", new { type, id }, transaction);
        transaction.Commit();
        return version;
    }

    /// <summary>Every version of a resource, newest first; deleted versions have no body.</summary>
    /// <exception cref="ResourceGoneException">The owner's records were erased.</exception>
    public IReadOnlyList<StoredResource?> History(string type, string id)
    {
        using var connection = Open();
        var owner = connection.QuerySingleOrDefault<string?>("SELECT owner FROM current WHERE type = @type AND id = @id", new { type, id });
        if (owner is null)
            return [];
        var key = DataKey(connection, null, owner, create: false);
        return connection.Query<(int Version, long LastUpdated, bool Deleted, byte[]? Body)>(
                "SELECT version, last_updated, deleted, body FROM versions WHERE type = @type AND id = @id ORDER BY version DESC", new { type, id })
            .Select(v => v.Deleted || v.Body is null
                ? null
                : new StoredResource(type, id, v.Version, owner, v.LastUpdated, RecordCipher.Open(key, v.Body, RecordCipher.ResourceBinding(type, id, v.Version))))
            .ToList();
    }
}
