using Dapper;
using Health.Consent.Policy;
using Health.Ledger.Entries;
using Health.Ledger.Storage;
using Microsoft.Data.Sqlite;

namespace Health.Consent.Projection;

/// <summary>
/// Keeps the consent state, the record locators and the access decisions in the ledger's SQLite
/// projection. An <c>AccessRequested</c> entry is decided here, when it is applied, from the grants
/// in force at that log position and the entry's leader-assigned time: every node decides alike,
/// and a revoke applied before a request always denies it.
/// </summary>
public sealed class ConsentProjection : ILedgerProjection
{
    // Run for every access request, on every node: compiled once (ReusedStatement).
    private readonly ReusedStatement insertAccess = new("""
        INSERT INTO access_log(idx, ts, patient_key, requester, organization, custodian, scope, purpose, interaction, break_glass_reason,
            permitted, break_glass, reason, consent_id, withheld, gateway)
        VALUES (@idx, @ts, @patientKey, @requester, @organization, @custodian, @scope, @purpose, @interaction, @breakGlassReason,
            @permitted, @breakGlass, @reason, @consentId, @withheld, @gateway)
        """,
        "@idx", "@ts", "@patientKey", "@requester", "@organization", "@custodian", "@scope", "@purpose", "@interaction", "@breakGlassReason",
        "@permitted", "@breakGlass", "@reason", "@consentId", "@withheld", "@gateway");

    private readonly ReusedStatement selectGrantsInForce = new(
        "SELECT consent_id, provision, granted_idx FROM consent_grants WHERE patient_key = @patientKey AND revoked_idx IS NULL AND provision IS NOT NULL",
        "@patientKey");

    /// <inheritdoc/>
    public void CreateSchema(SqliteConnection connection) => connection.Execute("""
        CREATE TABLE IF NOT EXISTS consent_grants(consent_id TEXT PRIMARY KEY, patient_key TEXT NOT NULL, provision TEXT,
            granted_idx INTEGER NOT NULL, granted_ts INTEGER NOT NULL, revoked_idx INTEGER, revoked_ts INTEGER);
        CREATE INDEX IF NOT EXISTS consent_grants_patient ON consent_grants(patient_key);
        CREATE TABLE IF NOT EXISTS record_locations(patient_key TEXT NOT NULL, custodian TEXT NOT NULL, first_idx INTEGER NOT NULL,
            last_idx INTEGER NOT NULL, PRIMARY KEY(patient_key, custodian)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS access_log(idx INTEGER PRIMARY KEY, ts INTEGER NOT NULL, patient_key TEXT NOT NULL, requester TEXT NOT NULL,
            organization TEXT NOT NULL, custodian TEXT NOT NULL, scope TEXT NOT NULL, purpose TEXT NOT NULL, interaction TEXT NOT NULL,
            break_glass_reason TEXT, permitted INTEGER NOT NULL, break_glass INTEGER NOT NULL, reason TEXT NOT NULL, consent_id TEXT, withheld TEXT NOT NULL,
            gateway TEXT);
        CREATE INDEX IF NOT EXISTS access_log_patient ON access_log(patient_key, idx);
        """);

    /// <inheritdoc/>
    public void Apply(LedgerEntry entry, SqliteConnection connection, SqliteTransaction transaction)
    {
        var fields = entry.Fields;
        if (entry.Kind == ConsentEntryKinds.RecordsLocated.Name)
        {
            connection.Execute("""
                INSERT INTO record_locations(patient_key, custodian, first_idx, last_idx) VALUES (@patientKey, @custodian, @idx, @idx)
                ON CONFLICT(patient_key, custodian) DO UPDATE SET last_idx = excluded.last_idx
                """, new { patientKey = fields["patientKey"], custodian = fields["custodian"], idx = entry.Index }, transaction);
        }
        else if (entry.Kind == ConsentEntryKinds.ConsentGranted.Name)
        {
            // A provision that does not parse is kept as NULL: a grant that never applies. Apply
            // must not fail on what a client sent.
            var provision = ProvisionJson.TryRead(fields["provision"]) is { } parsed ? ProvisionJson.Write(parsed) : null;
            connection.Execute("""
                INSERT INTO consent_grants(consent_id, patient_key, provision, granted_idx, granted_ts) VALUES (@consentId, @patientKey, @provision, @idx, @ts)
                ON CONFLICT(consent_id) DO UPDATE SET provision = excluded.provision, granted_idx = excluded.granted_idx,
                    granted_ts = excluded.granted_ts, revoked_idx = NULL, revoked_ts = NULL
                WHERE consent_grants.patient_key = excluded.patient_key
                """, new { consentId = fields["consentId"], patientKey = fields["patientKey"], provision, idx = entry.Index, ts = entry.Timestamp }, transaction);
        }
        else if (entry.Kind == ConsentEntryKinds.ConsentRevoked.Name)
        {
            connection.Execute(
                "UPDATE consent_grants SET revoked_idx = @idx, revoked_ts = @ts WHERE consent_id = @consentId AND patient_key = @patientKey AND revoked_idx IS NULL",
                new { consentId = fields["consentId"], patientKey = fields["patientKey"], idx = entry.Index, ts = entry.Timestamp }, transaction);
        }
        else if (entry.Kind == ConsentEntryKinds.AccessRequested.Name)
        {
            ApplyAccess(entry, connection, transaction);
        }
    }

    private void ApplyAccess(LedgerEntry entry, SqliteConnection connection, SqliteTransaction transaction)
    {
        var fields = entry.Fields;
        var breakGlassReason = fields.GetValueOrDefault("breakGlassReason");
        var request = new AccessRequest(fields["requester"], fields["organization"], fields["custodian"], fields["patientKey"],
            fields["scope"], fields["purpose"], !string.IsNullOrEmpty(breakGlassReason), entry.Timestamp);
        var decision = ConsentPolicy.Decide(GrantsInForce(connection, transaction, request.PatientKey), request);
        insertAccess.Execute(connection,
            entry.Index, entry.Timestamp, request.PatientKey, request.Requester, request.Organization, request.Custodian, request.Scope,
            request.Purpose, fields["interaction"], breakGlassReason, decision.Permitted, decision.BreakGlass, decision.Reason,
            decision.ConsentId, string.Join(' ', decision.WithheldLabels), fields.GetValueOrDefault("gateway"));
    }

    private List<ConsentGrant> GrantsInForce(SqliteConnection connection, SqliteTransaction transaction, string patientKey)
    {
        var grants = new List<ConsentGrant>();
        using var rows = selectGrantsInForce.Bind(connection, transaction, patientKey).ExecuteReader();
        while (rows.Read())
        {
            if (ProvisionJson.TryRead(rows.GetString(1)) is { } provision)
                grants.Add(new ConsentGrant(rows.GetString(0), patientKey, provision, rows.GetInt64(2)));
        }

        return grants;
    }
}
