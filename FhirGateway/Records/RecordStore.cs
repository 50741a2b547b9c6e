using Dapper;
using Health.Ledger.Storage;
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

    /// <summary>
    /// Owner of the search index's HMAC key among the data keys, so that a master key rotation
    /// re-wraps it with them and the index keeps matching. No FHIR id contains <c>#</c>.
    /// </summary>
    public const string IndexKeyOwner = "#search-index";

    /// <summary>
    /// The index layout this code reads and writes, kept in SQLite's <c>user_version</c>. Layout 3
    /// keys token rows by the token and the insertion sequence alone: the token is keyed by its
    /// parameter already and the sequence names the resource and so its type, and each row inserted
    /// at a place its HMAC sets writes half the bytes it did with the type and parameter in front.
    /// </summary>
    private const int IndexLayout = 3;

    private readonly string connectionString;
    private readonly byte[] masterKey;

    // The lookups every read makes (the patient's key, the resource, its data key), on connections
    // that keep their statements compiled.
    private readonly KeptConnections kept;

    // One writer at a time, the next one let in as soon as the last is done. SQLite refuses a
    // second writer as busy, and Microsoft.Data.Sqlite then sleeps 150 ms before asking again.
    private readonly SemaphoreSlim writeTurn = new(1, 1);

    /// <summary>Opens (creating if needed) the store at <paramref name="path"/>.</summary>
    public RecordStore(string path, byte[] masterKey)
    {
        this.masterKey = masterKey;
        connectionString = new SqliteConnectionStringBuilder { DataSource = Path.GetFullPath(path), Pooling = true }.ToString();
        kept = new KeptConnections(connectionString);
        using var connection = Open();
        connection.Execute("PRAGMA journal_mode = WAL");
        var layout = connection.ExecuteScalar<long>("PRAGMA user_version");
        var existing = connection.ExecuteScalar<long>("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'current'") > 0;
        using var transaction = connection.BeginTransaction();

        // A store written by an earlier layout loses its index here and gets it back from the
        // records themselves (RebuildIndex), in one transaction that also sets the new layout.
        if (existing && layout < IndexLayout)
            connection.Execute("DROP TABLE IF EXISTS search_tokens; DROP TABLE IF EXISTS search_dates;", transaction: transaction);
        connection.Execute("""
            CREATE TABLE IF NOT EXISTS data_keys(owner TEXT PRIMARY KEY, wrapped BLOB, shredded INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS current(seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
                owner TEXT NOT NULL, last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, UNIQUE(type, id));
            CREATE TABLE IF NOT EXISTS versions(type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, last_updated INTEGER NOT NULL,
                deleted INTEGER NOT NULL DEFAULT 0, body BLOB, UNIQUE(type, id, version));
            CREATE TABLE IF NOT EXISTS search_tokens(token BLOB NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(token, seq)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS search_tokens_resource ON search_tokens(seq);
            CREATE TABLE IF NOT EXISTS search_dates(seq INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS search_dates_lookup ON search_dates(type, param, low);
            CREATE INDEX IF NOT EXISTS search_dates_resource ON search_dates(seq);
            CREATE TABLE IF NOT EXISTS patient_keys(owner TEXT PRIMARY KEY, patient_key TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS patient_keys_key ON patient_keys(patient_key);
            """, transaction: transaction);
        if (!existing)
            connection.Execute($"PRAGMA user_version = {IndexLayout}", transaction: transaction);
        IndexKey = DataKey(connection, transaction, IndexKeyOwner, create: true);
        transaction.Commit();
        IndexNeedsRebuild = existing && layout < IndexLayout;
    }

    /// <summary>Keys the HMAC tokens of the search index: random per store, sealed under the master key.</summary>
    public byte[] IndexKey { get; }

    /// <summary>Whether the store was written by an earlier index layout and <see cref="RebuildIndex"/> must run before it is searched.</summary>
    public bool IndexNeedsRebuild { get; private set; }

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
        var row = connection.QuerySingleOrDefault<(byte[]? Wrapped, bool Shredded)?>(DataKeyQuery, new { owner }, transaction);
        if (row is not null || !create)
            return Unwrapped(owner, row);
        var key = RecordCipher.NewDataKey();
        connection.Execute("INSERT INTO data_keys(owner, wrapped) VALUES (@owner, @wrapped)",
            new { owner, wrapped = RecordCipher.Seal(masterKey, key, RecordCipher.KeyBinding(owner)) }, transaction);
        return key;
    }

    private const string DataKeyQuery = "SELECT wrapped, shredded FROM data_keys WHERE owner = @owner";

    private byte[] Unwrapped(string owner, (byte[]? Wrapped, bool Shredded)? row) => row switch
    {
        { Shredded: true } => throw new ResourceGoneException("The records of this patient were erased."),
        { Wrapped: { } wrapped } => RecordCipher.Open(masterKey, wrapped, RecordCipher.KeyBinding(owner)),
        _ => throw new InvalidOperationException("No data key exists for this owner."),
    };

    /// <summary>
    /// Destroys a patient's data key: every version of every resource in the patient's compartment
    /// can no longer be decrypted, and reads answer 410.
    /// </summary>
    /// <returns>Whether the patient had records here.</returns>
    public bool Shred(string patientId)
    {
        writeTurn.Wait();
        try
        {
            using var connection = Open();
            return connection.Execute("UPDATE data_keys SET wrapped = NULL, shredded = 1 WHERE owner = @patientId AND owner NOT IN ('', @IndexKeyOwner)", new { patientId, IndexKeyOwner }) > 0;
        }
        finally
        {
            writeTurn.Release();
        }
    }

    /// <summary>The consortium pseudonym of a patient held here, or null when the patient is not known.</summary>
    public string? PatientKeyOf(string owner)
    {
        return kept.Query(connection => connection.Scalar<string>("SELECT patient_key FROM patient_keys WHERE owner = @owner", ("@owner", owner)));
    }

    /// <summary>The local patient id of a consortium pseudonym, or null when no such patient is held here.</summary>
    public string? OwnerOfPatientKey(string patientKey)
    {
        using var connection = Open();
        return connection.QueryFirstOrDefault<string>("SELECT owner FROM patient_keys WHERE patient_key = @patientKey", new { patientKey });
    }

    /// <summary>
    /// Starts a transaction for writing resource versions; nothing is visible until it commits.
    /// Writers take turns: this waits until the writer before it is disposed.
    /// </summary>
    public RecordWriter BeginWrite()
    {
        writeTurn.Wait();
        SqliteConnection? connection = null;
        try
        {
            connection = Open();
            // Multi-row inserts that may hit a constraint keep a statement journal; in memory it costs
            // no temporary file writes (on disk it wrote more per bundle than the WAL).
            connection.Execute("PRAGMA temp_store = MEMORY");
            return new RecordWriter(this, connection, connection.BeginTransaction());
        }
        catch
        {
            connection?.Dispose();
            writeTurn.Release();
            throw;
        }
    }

    /// <summary>Lets the next writer in; called once by each <see cref="RecordWriter"/> when it is disposed.</summary>
    internal void EndWrite() => writeTurn.Release();

    /// <summary>
    /// Indexes every current resource again, in one transaction that also records the current
    /// layout: the upgrade of a store written by an earlier one.
    /// </summary>
    /// <returns>How many resources were indexed (those of erased patients are not).</returns>
    public int RebuildIndex(SearchIndexer indexer)
    {
        using var writer = BeginWrite();
        var indexed = 0;
        foreach (var resource in writer.CurrentResources())
        {
            var (tokens, dates) = indexer.Index(Fhir.FhirJson.Parse(resource.Stored.Json));
            writer.AddIndexRows(resource.Seq, resource.Stored.Type, tokens, dates);
            indexed++;
        }

        writer.SetLayout(IndexLayout);
        writer.Commit();
        IndexNeedsRebuild = false;
        return indexed;
    }

    /// <summary>The current version of a resource, or a specific one.</summary>
    /// <returns>Null when no such resource or version exists.</returns>
    /// <exception cref="ResourceGoneException">It was deleted or its patient's records were erased.</exception>
    public StoredResource? Read(string type, string id, int? version = null)
    {
        if (kept.Query(connection => Find(connection, type, id, version)) is not { } found)
            return null;
        if (found.Deleted)
            throw new ResourceGoneException($"{type}/{id} was deleted.");
        return OwnerKeys.OpenWith(Unwrapped(found.Owner, found.DataKey), type, id, found.Version, found.Owner, found.LastUpdated, found.Body!);
    }

    private sealed record FoundVersion(int Version, string Owner, long LastUpdated, bool Deleted, byte[]? Body, (byte[]? Wrapped, bool Shredded)? DataKey);

    // A version (the current one when none is named) with its owner's wrapped data key; deleted
    // when that version is a deletion, or the current one is and no version was named.
    private static FoundVersion? Find(KeptConnection connection, string type, string id, int? version)
    {
        if (CurrentOf(connection, type, id) is not { } current)
            return null;
        var wanted = version ?? current.Version;
        (long LastUpdated, bool Deleted, byte[]? Body) stored;
        using (var row = connection.Command("SELECT last_updated, deleted, body FROM versions WHERE type = @type AND id = @id AND version = @wanted",
            ("@type", type), ("@id", id), ("@wanted", wanted)).ExecuteReader())
        {
            if (!row.Read())
                return null;
            stored = (row.GetInt64(0), row.GetBoolean(1), row.IsDBNull(2) ? null : row.GetFieldValue<byte[]>(2));
        }

        var deleted = stored.Deleted || (version is null && current.Deleted);
        using var key = connection.Command(DataKeyQuery, ("@owner", current.Owner)).ExecuteReader();
        (byte[]? Wrapped, bool Shredded)? dataKey = key.Read() ? (key.IsDBNull(0) ? null : key.GetFieldValue<byte[]>(0), key.GetBoolean(1)) : null;
        return new FoundVersion(wanted, current.Owner, stored.LastUpdated, deleted, stored.Body, dataKey);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        kept.Dispose();
        SqliteConnection.ClearAllPools();
    }
}
