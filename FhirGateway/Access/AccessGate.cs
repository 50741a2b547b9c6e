using System.Globalization;
using Health.Consent;
using Health.Consent.Policy;
using Health.Consent.Projection;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Records;
using Health.Ledger.Entries;
using Health.Ledger.Replication;
using Hl7.Fhir.Model;
using SearchParameter = Health.FhirGateway.Records.SearchParameter;
using Task = System.Threading.Tasks.Task;

namespace Health.FhirGateway.Access;

/// <summary>
/// Authorize by log: before a patient's records are read, an <c>AccessRequested</c> entry is
/// appended and the request waits until it is committed and applied here; the decision the ledger
/// reached at that position is the answer. Concurrent requests share Raft entries (group commit).
/// </summary>
public sealed class AccessGate(LedgerNode ledger, ConsentLedger consents, RecordStore store, SearchIndexer indexer, BreakGlassReasons reasons, Hosting.GatewayMetrics metrics)
{
    /// <summary>Most patients one search may reach; each needs its own ledger entry.</summary>
    public const int MaxPatientsPerSearch = 100;

    private static readonly SearchParameter SecurityLabel = SearchParameters.For("Patient").Single(p => p.Name == "_security");

    /// <summary>Whether the caller's reads go through the gate: everyone but a patient reading their own compartment.</summary>
    public static bool Applies(SmartAccess access) => access.CompartmentPatient is null;

    /// <summary>Authorizes reading one patient's records and sets <c>X-Ledger-Index</c>.</summary>
    /// <returns>The decision, a permit; its withheld labels still apply.</returns>
    /// <exception cref="RequestFailure">403 with the reason and the ledger index when denied.</exception>
    public async Task<ConsentDecision> AuthorizeAsync(HttpContext context, SmartAccess access, string owner, string scope, string interaction)
    {
        var record = await RequestAsync(AccessContext.From(context, access), owner, scope, interaction, context.RequestAborted).ConfigureAwait(false);
        context.Response.Headers[AccessHeaders.LedgerIndex] = record.Index.ToString(CultureInfo.InvariantCulture);
        return record.Decision.Permitted ? record.Decision : throw Denied(record);
    }

    /// <summary>
    /// Authorizes a search reaching several patients: one entry each, appended together. Denied
    /// patients are left out without a trace in the results, unless the search named the patient.
    /// </summary>
    /// <returns>The owners whose records may be returned, with what their consents withhold.</returns>
    /// <exception cref="RequestFailure">400 when too many patients match; 403 when every named patient is denied.</exception>
    public async Task<OwnerFilter> AuthorizeSearchAsync(HttpContext context, SmartAccess access, IReadOnlyList<string> owners, string scope, bool patientNamed)
    {
        if (owners.Count > MaxPatientsPerSearch)
            throw new RequestFailure(StatusCodes.Status400BadRequest, OperationOutcome.IssueType.TooCostly,
                $"This search reaches the records of more than {MaxPatientsPerSearch} patients; each access is recorded, so name the patient.");
        var who = AccessContext.From(context, access);
        var records = await Task.WhenAll(owners.Select(o => RequestAsync(who, o, scope, "search", context.RequestAborted))).ConfigureAwait(false);
        if (records.Length > 0)
            context.Response.Headers[AccessHeaders.LedgerIndex] = string.Join(',', records.Select(r => r.Index.ToString(CultureInfo.InvariantCulture)));
        var permitted = owners.Where((_, i) => records[i].Decision.Permitted).ToList();
        if (patientNamed && permitted.Count == 0 && records.Length > 0)
            throw Denied(records[0]);

        var restricted = owners.Where((_, i) => records[i].Decision is { Permitted: true, WithheldLabels.Count: > 0 }).ToList();
        var withheld = records.Where(r => r.Decision.Permitted).SelectMany(r => r.Decision.WithheldLabels).Distinct(StringComparer.Ordinal);
        return new OwnerFilter([RecordStore.NodeOwner, .. permitted], restricted, withheld.Select(WithheldToken).ToList());
    }

    /// <summary>The filter for a single patient's records under a permit.</summary>
    /// <param name="owner">The patient's local id.</param>
    /// <param name="decision">The permit.</param>
    public OwnerFilter FilterFor(string owner, ConsentDecision decision)
        => new([owner], decision.WithheldLabels.Count > 0 ? [owner] : [], decision.WithheldLabels.Select(WithheldToken).ToList());

    /// <summary>Whether a resource carries a security label the decision withholds.</summary>
    public bool IsWithheld(string type, string id, ConsentDecision decision)
        => decision.WithheldLabels.Count > 0 && store.CarriesToken(type, id, decision.WithheldLabels.Select(WithheldToken).ToList());

    private byte[] WithheldToken(string label) => indexer.QueryToken(SecurityLabel, label)!;

    /// <summary>
    /// Records a request for another custodian's records, made by this node on the requester's
    /// behalf (this node is the permit's <c>gateway</c>); returns the applied decision, permit or not.
    /// </summary>
    public Task<AccessRecord> RequestAtCustodianAsync(AccessContext who, string patientKey, string custodian, string scope, string interaction, CancellationToken token)
        => AppendRequestAsync(who, patientKey, custodian, scope, interaction, gateway: ledger.NodeId, token);

    private Task<AccessRecord> RequestAsync(AccessContext who, string owner, string scope, string interaction, CancellationToken token)
    {
        var patientKey = store.PatientKeyOf(owner)
            ?? throw RequestFailure.Forbidden("The patient of these records is not registered here, so no access can be recorded for them.");
        return AppendRequestAsync(who, patientKey, ledger.NodeId, scope, interaction, gateway: null, token);
    }

    private async Task<AccessRecord> AppendRequestAsync(AccessContext who, string patientKey, string custodian, string scope, string interaction, string? gateway, CancellationToken token)
    {
        // Removal by governance withdraws the trust in an organisation's credentials, as an unknown
        // issuer's would be: refused at the door, like a token that fails validation.
        if (ledger.Admission.IsRemoved(who.Organization))
            throw RequestFailure.Forbidden($"The organisation {who.Organization} was removed from the consortium; its clinicians no longer have access here.");
        var fields = new Dictionary<string, string>
        {
            ["requester"] = who.Requester,
            ["organization"] = who.Organization,
            ["custodian"] = custodian,
            ["patientKey"] = patientKey,
            ["scope"] = scope,
            ["purpose"] = who.Purpose,
            ["interaction"] = interaction,
        };
        if (who.BreakGlassReason is { } reason)
            fields["breakGlassReason"] = reasons.Seal(reason, patientKey);
        if (gateway is not null)
            fields["gateway"] = gateway;
        var appended = await ledger.AppendAsync(new LedgerCommand(ConsentEntryKinds.AccessRequested.Name, fields), token).ConfigureAwait(false);
        var record = consents.Access(appended.Index) ?? throw new InvalidOperationException($"Ledger entry {appended.Index} was applied but holds no access decision.");
        metrics.RecordDecision(record.Decision.Permitted, record.Decision.BreakGlass);
        return record;
    }

    /// <summary>The 403 for a denied access request.</summary>
    public static RequestFailure Denied(AccessRecord record) => new(StatusCodes.Status403Forbidden, OperationOutcome.IssueType.Forbidden,
        $"Access denied by the ledger at index {record.Index.ToString(CultureInfo.InvariantCulture)}: {record.Decision.Reason}")
    {
        LedgerIndex = record.Index,
    };
}
