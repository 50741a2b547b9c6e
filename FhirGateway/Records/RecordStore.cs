using Dapper;
using Microsoft.Data.Sqlite;

namespace Health.FhirGateway.Records;

/// <summary>
/// The custodian's FHIR resources in SQLite: every version's body sealed under its patient's
/// data key, the current version of each resource, and a search index of HMAC tokens and date
/// ranges. Nothing in the file is readable PHI.
/// </summary>
public sealed partial class RecordStore : IDisposable
{
    /// <summary>Owner of the data key for resources outside any patient's compartment.</summary>
    public const string NodeOwner = "";

    private readonly string connectionString;
    private readonly byte[] masterKey;

    /// <summary>Opens (creating if needed) the store at <paramref name="path"/>.</summary>
    public RecordStore(string path, byte[] masterKey)
    {
        this.masterKey = masterKey;
        connectionString = new SqliteConnectionStringBuilder { DataSource = Path.GetFullPath(path), Pooling = true }.ToString();
        using var connection = Open();
        connection.Execute("""
            PRAGMA journal_mode = WAL;
            CREATE TABLE IF NOT EXISTS data_keys(owner TEXT PRIMARY KEY, wrapped BLOB, shredded INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS current(seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
                owner TEXT NOT NULL, last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, UNIQUE(type, id));
            CREATE TABLE IF NOT EXISTS versions(type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, last_updated INTEGER NOT NULL,
                deleted INTEGER NOT NULL DEFAULT 0, body BLOB, UNIQUE(type, id, version));
            CREATE TABLE IF NOT EXISTS search_tokens(type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, token BLOB NOT NULL,
                PRIMARY KEY(type, param, token, id)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS search_tokens_owner ON search_tokens(type, id);
            CREATE TABLE IF NOT EXISTS search_dates(type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS search_dates_lookup ON search_dates(type, param, low);
            CREATE INDEX IF NOT EXISTS search_dates_owner ON search_dates(type, id);
            CREATE TABLE IF NOT EXISTS patient_keys(owner TEXT PRIMARY KEY, patient_key TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS patient_keys_key ON patient_keys(patient_key);
            """);
    }

    /// <summary>Opens a connection to the store.</summary>
    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(connectionString);
        connection.Open();
        return connection;
    }

    /// <summary>The data key of an owner (a patient id, or <see cref="NodeOwner"/>), created on first use.</summary>
    /// <exception cref="ResourceGoneException">The owner's key was destroyed.</exception>
    public byte[] DataKey(SqliteConnection connection, SqliteTransaction? transaction, string owner, bool create)
    {
        var row = connection.QuerySingleOrDefault<(byte[]? Wrapped, bool Shredded)?>(
            "SELECT wrapped, shredded FROM data_keys WHERE owner = @owner", new { owner }, transaction);
        if (row is { Shredded: true })
            throw new ResourceGoneException("The records of this patient were erased.");
        if (row is { Wrapped: { } wrapped })
            return RecordCipher.Open(masterKey, wrapped, RecordCipher.KeyBinding(owner));
        if (!create)
            throw new InvalidOperationException("No data key exists for this owner.");
        var key = RecordCipher.NewDataKey();
        connection.Execute("INSERT INTO data_keys(owner, wrapped) VALUES (@owner, @wrapped)",
            new { owner, wrapped = RecordCipher.Seal(masterKey, key, RecordCipher.KeyBinding(owner)) }, transaction);
        return key;
    }

    /// <summary>
    /// Destroys a patient's data key: every version of every resource in the patient's compartment
    /// can no longer be decrypted, and reads answer 410.
    /// </summary>
    /// <returns>Whether the patient had records here.</returns>
    public bool Shred(string patientId)
    {
        using var connection = Open();
        return connection.Execute("UPDATE data_keys SET wrapped = NULL, shredded = 1 WHERE owner = @patientId AND owner <> ''", new { patientId }) > 0;
    }

    /// <summary>The consortium pseudonym of a patient held here, or null when the patient is not known.</summary>
    public string? PatientKeyOf(string owner)
    {
        using var connection = Open();
        return connection.QuerySingleOrDefault<string>("SELECT patient_key FROM patient_keys WHERE owner = @owner", new { owner });
    }

    /// <summary>The local patient id of a consortium pseudonym, or null when no such patient is held here.</summary>
    public string? OwnerOfPatientKey(string patientKey)
    {
        using var connection = Open();
        return connection.QueryFirstOrDefault<string>("SELECT owner FROM patient_keys WHERE patient_key = @patientKey", new { patientKey });
    }

    /// <summary>Starts a transaction for writing resource versions; nothing is visible until it commits.</summary>
    public RecordWriter BeginWrite()
    {
        var connection = Open();
        return new RecordWriter(this, connection, connection.BeginTransaction());
    }

    /// <summary>The current version of a resource, or a specific one.</summary>
    /// <returns>Null when no such resource or version exists.</returns>
    /// <exception cref="ResourceGoneException">It was deleted or its patient's records were erased.</exception>
    public StoredResource? Read(string type, string id, int? version = null)
    {
        using var connection = Open();
        var row = connection.QuerySingleOrDefault<(int Version, string Owner, long LastUpdated, bool Deleted)?>(
            "SELECT version, owner, last_updated, deleted FROM current WHERE type = @type AND id = @id", new { type, id });
        if (row is not { } current)
            return null;
        var wanted = version ?? current.Version;
        var stored = connection.QuerySingleOrDefault<(long LastUpdated, bool Deleted, byte[]? Body)?>(
            "SELECT last_updated, deleted, body FROM versions WHERE type = @type AND id = @id AND version = @wanted", new { type, id, wanted });
        if (stored is not { } found)
            return null;
        if (found.Deleted || (version is null && current.Deleted))
            throw new ResourceGoneException($"{type}/{id} was deleted.");
        var key = DataKey(connection, null, current.Owner, create: false);
        var json = RecordCipher.Open(key, found.Body, RecordCipher.ResourceBinding(type, id, wanted));
        return new StoredResource(type, id, wanted, current.Owner, found.LastUpdated, json);
    }

    /// <inheritdoc/>
    public void Dispose() => SqliteConnection.ClearAllPools();
}
