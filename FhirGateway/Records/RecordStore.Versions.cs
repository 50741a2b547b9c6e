using Dapper;
using Health.Ledger.Storage;

namespace Health.FhirGateway.Records;

public sealed partial class RecordStore
{
    /// <summary>The current version, owner and deleted flag of a resource, or null when unknown.</summary>
    public (int Version, string Owner, bool Deleted)? Current(string type, string id) => kept.Query(connection => CurrentOf(connection, type, id));

    /// <summary>The query for a resource's current version, owner and deleted flag (parameters <c>@type</c>, <c>@id</c>).</summary>
    internal const string CurrentQuery = "SELECT version, owner, deleted FROM current WHERE type = @type AND id = @id";

    private static (int Version, string Owner, bool Deleted)? CurrentOf(KeptConnection connection, string type, string id)
    {
        using var row = connection.Command(CurrentQuery, ("@type", type), ("@id", id)).ExecuteReader();
        return row.Read() ? (row.GetInt32(0), row.GetString(1), row.GetBoolean(2)) : null;
    }

    /// <summary>How many resources are current (not deleted), and how many patients have records here.</summary>
    public (long Resources, long Patients) Counts()
    {
        using var connection = Open();
        return connection.QuerySingle<(long, long)>("SELECT (SELECT COUNT(*) FROM current WHERE deleted = 0), (SELECT COUNT(*) FROM patient_keys)");
    }

    /// <summary>Records a deletion as a new version without a body.</summary>
    /// <returns>The deletion's version number.</returns>
    public int Delete(string type, string id, int currentVersion, long now)
    {
        using var writer = BeginWrite();
        var version = writer.Delete(type, id, currentVersion, now);
        writer.Commit();
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
        var keys = new OwnerKeys(this, connection, null);
        keys.For(owner); // erased records answer Gone even when every version is a deletion
        return connection.Query<(int Version, long LastUpdated, bool Deleted, byte[]? Body)>(
                "SELECT version, last_updated, deleted, body FROM versions WHERE type = @type AND id = @id ORDER BY version DESC", new { type, id })
            .Select(v => v.Deleted || v.Body is null ? null : keys.Open(type, id, v.Version, owner, v.LastUpdated, v.Body))
            .ToList();
    }
}
