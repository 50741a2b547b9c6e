using Dapper;
using Health.Consent.Policy;
using Health.Ledger.Storage;
using Microsoft.Data.Sqlite;

namespace Health.Consent.Projection;

/// <summary>Reads what <see cref="ConsentProjection"/> keeps, on any thread.</summary>
public sealed class ConsentLedger(LedgerStore store)
{
    /// <summary>The applied access request at <paramref name="index"/>, or null when that entry is not one (or not applied here).</summary>
    public AccessRecord? Access(long index)
    {
        // Read back after every access request: a kept statement.
        return store.Query(connection =>
        {
            using var reader = connection.Command(AccessColumns + " WHERE idx = @index", ("@index", index)).ExecuteReader();
            return reader.Parse<AccessRow>().Select(ToRecord).SingleOrDefault();
        });
    }

    /// <summary>A patient's access requests, newest first, before ledger index <paramref name="before"/>.</summary>
    public IReadOnlyList<AccessRecord> AccessesOf(string patientKey, long before = long.MaxValue, int count = 100)
    {
        using var connection = store.OpenReader();
        return Accesses(connection, "WHERE patient_key = @patientKey AND idx < @before ORDER BY idx DESC LIMIT @count", new { patientKey, before, count });
    }

    /// <summary>
    /// Access requests matching every given criterion, oldest first, from ledger index
    /// <paramref name="after"/> on: the patient key, the requester or organisation (agent), a time
    /// range, the outcome and the purpose. Returns at most <paramref name="count"/> and the total.
    /// </summary>
    public (IReadOnlyList<long> Indices, long Total) SearchAccesses(string? patientKey, string? agent, long? from, long? to, bool? permitted, string? purpose, long after, int count)
    {
        var where = "1 = 1"
            + (patientKey is null ? string.Empty : " AND patient_key = @patientKey")
            + (agent is null ? string.Empty : " AND (requester = @agent OR organization = @agent)")
            + (from is null ? string.Empty : " AND ts >= @from")
            + (to is null ? string.Empty : " AND ts <= @to")
            + (permitted is null ? string.Empty : " AND permitted = @permitted")
            + (purpose is null ? string.Empty : " AND purpose = @purpose");
        var parameters = new { patientKey, agent, from, to, permitted, purpose, after, count };
        using var connection = store.OpenReader();
        var total = connection.ExecuteScalar<long>($"SELECT COUNT(*) FROM access_log WHERE {where}", parameters);
        var indices = connection.Query<long>($"SELECT idx FROM access_log WHERE {where} AND idx > @after ORDER BY idx LIMIT @count", parameters).AsList();
        return (indices, total);
    }

    /// <summary>Every grant a patient made, newest first.</summary>
    public IReadOnlyList<GrantRecord> GrantsOf(string patientKey)
    {
        using var connection = store.OpenReader();
        return connection.Query<(string ConsentId, string? Provision, long GrantedIdx, long GrantedTs, long? RevokedIdx, long? RevokedTs)>(
                "SELECT consent_id, provision, granted_idx, granted_ts, revoked_idx, revoked_ts FROM consent_grants WHERE patient_key = @patientKey ORDER BY granted_idx DESC",
                new { patientKey })
            .Select(r => new GrantRecord(r.ConsentId, r.Provision is null ? null : ProvisionJson.TryRead(r.Provision), r.GrantedIdx, r.GrantedTs, r.RevokedIdx, r.RevokedTs))
            .ToList();
    }

    /// <summary>
    /// Every applied entry up to <paramref name="upTo"/> in index order, with its canonical bytes
    /// and, for access requests, the decision applied; streamed, so memory stays flat.
    /// </summary>
    public IEnumerable<(long Index, byte[] Body, ConsentDecision? Decision)> EntriesWithDecisions(long upTo)
    {
        using var connection = store.OpenReader();
        foreach (var row in connection.Query<(long Index, byte[] Body, bool? Permitted, string? Reason, string? ConsentId, bool? BreakGlass, string? Withheld)>("""
            SELECT e.idx, e.body, a.permitted, a.reason, a.consent_id, a.break_glass, a.withheld
            FROM entries e LEFT JOIN access_log a ON a.idx = e.idx WHERE e.idx <= @upTo ORDER BY e.idx
            """, new { upTo }, buffered: false))
        {
            yield return (row.Index, row.Body, row.Permitted is { } permitted
                ? new ConsentDecision(permitted, row.Reason!, row.ConsentId, row.BreakGlass == true, row.Withheld!.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                : null);
        }
    }

    /// <summary>The custodians the ledger says hold records about a patient.</summary>
    public IReadOnlyList<string> CustodiansOf(string patientKey)
    {
        using var connection = store.OpenReader();
        return connection.Query<string>("SELECT custodian FROM record_locations WHERE patient_key = @patientKey ORDER BY custodian", new { patientKey }).AsList();
    }

    private const string AccessColumns = """
        SELECT idx AS "Index", ts AS Time, requester, organization, custodian, patient_key AS PatientKey, scope, purpose, interaction, break_glass_reason AS BreakGlassReason,
            permitted, break_glass AS BreakGlass, reason, consent_id AS ConsentId, withheld, gateway FROM access_log
        """;

    private static List<AccessRecord> Accesses(SqliteConnection connection, string where, object parameters)
        => connection.Query<AccessRow>($"{AccessColumns} {where}", parameters).Select(ToRecord).ToList();

    private static AccessRecord ToRecord(AccessRow r)
        => new(r.Index, r.Time, r.Requester, r.Organization, r.Custodian, r.PatientKey, r.Scope, r.Purpose, r.Interaction, r.BreakGlassReason,
            new ConsentDecision(r.Permitted, r.Reason, r.ConsentId, r.BreakGlass, r.Withheld.Split(' ', StringSplitOptions.RemoveEmptyEntries)), r.Gateway);

    // Dapper fills properties, converting SQLite's integers to bool.
    private sealed class AccessRow
    {
        public long Index { get; init; }
        public long Time { get; init; }
        public string Requester { get; init; } = "";
        public string Organization { get; init; } = "";
        public string Custodian { get; init; } = "";
        public string PatientKey { get; init; } = "";
        public string Scope { get; init; } = "";
        public string Purpose { get; init; } = "";
        public string Interaction { get; init; } = "";
        public string? BreakGlassReason { get; init; }
        public bool Permitted { get; init; }
        public bool BreakGlass { get; init; }
        public string Reason { get; init; } = "";
        public string? ConsentId { get; init; }
        public string Withheld { get; init; } = "";
        public string? Gateway { get; init; }
    }
}
