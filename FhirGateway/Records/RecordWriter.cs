using Dapper;
using Microsoft.Data.Sqlite;

namespace Health.FhirGateway.Records;

/// <summary>
/// Writes resource versions and their index rows inside one SQLite transaction with prepared
/// statements reused for every row, and caches the data keys it has opened.
/// </summary>
public sealed class RecordWriter : IDisposable
{
    private readonly RecordStore store;
    private readonly SqliteConnection connection;
    private readonly SqliteTransaction transaction;
    private readonly OwnerKeys keys;
    private readonly SqliteCommand insertVersion, upsertCurrent, deleteTokens, deleteDates, upsertPatientKey;
    private readonly BatchedInsert insertTokens, insertDates;
    private bool disposed;

    internal RecordWriter(RecordStore store, SqliteConnection connection, SqliteTransaction transaction)
    {
        this.store = store;
        this.connection = connection;
        this.transaction = transaction;
        keys = new OwnerKeys(store, connection, transaction);
        insertVersion = Prepare("INSERT INTO versions(type, id, version, last_updated, body) VALUES ($type, $id, $version, $updated, $body)", "$type", "$id", "$version", "$updated", "$body");
        upsertCurrent = Prepare("""
            INSERT INTO current(type, id, version, owner, last_updated) VALUES ($type, $id, $version, $owner, $updated)
            ON CONFLICT(type, id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated, deleted = 0
            RETURNING seq
            """, "$type", "$id", "$version", "$owner", "$updated");
        deleteTokens = Prepare("DELETE FROM search_tokens WHERE seq = $seq", "$seq");
        deleteDates = Prepare("DELETE FROM search_dates WHERE seq = $seq", "$seq");
        insertTokens = new BatchedInsert(connection, transaction, "INSERT OR IGNORE", "search_tokens", "token", "seq");
        upsertPatientKey = Prepare("INSERT OR REPLACE INTO patient_keys(owner, patient_key) VALUES ($owner, $key)", "$owner", "$key");
        insertDates = new BatchedInsert(connection, transaction, "INSERT", "search_dates", "seq", "type", "param", "low", "high");
    }

    /// <summary>
    /// Writes one new version of a resource, sealed under its owner's data key, with its index rows;
    /// for a Patient, also the patient's consortium pseudonym.
    /// </summary>
    public void Write(StoredResource resource, IReadOnlyList<byte[]> tokens, IReadOnlyList<(string Param, long Low, long High)> dates, bool createKey,
        string? patientKey = null)
    {
        if (patientKey is not null)
            Run(upsertPatientKey, resource.Owner, patientKey);
        var body = RecordCipher.Seal(keys.For(resource.Owner, createKey), resource.Json, RecordCipher.ResourceBinding(resource.Type, resource.Id, resource.Version));
        Run(insertVersion, resource.Type, resource.Id, resource.Version, resource.LastUpdated, body);
        var seq = (long)Scalar(upsertCurrent, resource.Type, resource.Id, resource.Version, resource.Owner, resource.LastUpdated)!;
        if (resource.Version > 1)
        {
            // A first version has no index rows to replace (and none buffered: updates are written
            // after every create of the bundle, and buffered rows are flushed before a delete).
            FlushIndexRows();
            Run(deleteTokens, seq);
            Run(deleteDates, seq);
        }

        AddIndexRows(seq, resource.Type, tokens, dates);
    }

    /// <summary>Adds the index rows of the resource at insertion sequence <paramref name="seq"/>.</summary>
    internal void AddIndexRows(long seq, string type, IReadOnlyList<byte[]> tokens, IReadOnlyList<(string Param, long Low, long High)> dates)
    {
        foreach (var token in tokens)
            insertTokens.Add(token, seq);
        foreach (var (param, low, high) in dates)
            insertDates.Add(seq, type, param, low, high);
    }

    /// <summary>
    /// Every current resource that can still be read (not deleted, patient not erased), with its
    /// insertion sequence, in that order.
    /// </summary>
    internal IEnumerable<(long Seq, StoredResource Stored)> CurrentResources()
    {
        var rows = connection.Query<(long Seq, string Type, string Id, int Version, string Owner, long LastUpdated, byte[] Body)>("""
            SELECT c.seq, c.type, c.id, c.version, c.owner, c.last_updated, v.body FROM current c
            JOIN versions v ON v.type = c.type AND v.id = c.id AND v.version = c.version
            WHERE c.deleted = 0 AND c.owner NOT IN (SELECT owner FROM data_keys WHERE shredded = 1) ORDER BY c.seq
            """, transaction: transaction, buffered: false);
        foreach (var row in rows)
            yield return (row.Seq, keys.Open(row.Type, row.Id, row.Version, row.Owner, row.LastUpdated, row.Body));
    }

    /// <summary>Records the index layout the store is in, with this transaction.</summary>
    internal void SetLayout(int layout)
        => connection.Execute($"PRAGMA user_version = {layout.ToString(System.Globalization.CultureInfo.InvariantCulture)}", transaction: transaction);

    /// <summary>Records a deletion as a new version without a body and drops the resource's index rows.</summary>
    /// <returns>The deletion's version number.</returns>
    public int Delete(string type, string id, int currentVersion, long now)
    {
        FlushIndexRows();
        var version = currentVersion + 1;
        connection.Execute("INSERT INTO versions(type, id, version, last_updated, deleted, body) VALUES (@type, @id, @version, @now, 1, NULL)",
            new { type, id, version, now }, transaction);
        var seq = connection.ExecuteScalar<long>("UPDATE current SET version = @version, last_updated = @now, deleted = 1 WHERE type = @type AND id = @id RETURNING seq",
            new { type, id, version, now }, transaction);
        Run(deleteTokens, seq);
        Run(deleteDates, seq);
        return version;
    }

    /// <summary>The current version, owner and deleted flag of a resource, as this transaction sees it.</summary>
    public (int Version, string Owner, bool Deleted)? Current(string type, string id)
        => connection.QuerySingleOrDefault<(int, string, bool)?>(RecordStore.CurrentQuery, new { type, id }, transaction);

    /// <summary>Commits everything written.</summary>
    public void Commit()
    {
        FlushIndexRows();
        transaction.Commit();
    }

    private void FlushIndexRows()
    {
        insertTokens.Flush();
        insertDates.Flush();
    }

    private SqliteCommand Prepare(string sql, params string[] names)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var name in names)
            command.Parameters.Add(new SqliteParameter { ParameterName = name });
        command.Prepare();
        return command;
    }

    private static void Run(SqliteCommand command, params object[] values)
    {
        Bind(command, values);
        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteCommand command, params object[] values)
    {
        Bind(command, values);
        return command.ExecuteScalar();
    }

    private static void Bind(SqliteCommand command, object[] values)
    {
        for (var i = 0; i < values.Length; i++)
            command.Parameters[i].Value = values[i];
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (disposed)
            return;
        disposed = true;
        try
        {
            foreach (var command in new[] { insertVersion, upsertCurrent, deleteTokens, deleteDates, upsertPatientKey })
                command.Dispose();
            insertTokens.Dispose();
            insertDates.Dispose();
            transaction.Dispose();
            connection.Dispose();
        }
        finally
        {
            store.EndWrite();
        }
    }
}
