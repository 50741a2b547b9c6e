using System.Globalization;
using Health.Consent.Policy;
using Health.Consent.Projection;
using Health.FhirGateway.Access;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Fhir;
using Health.FhirGateway.Records;
using Health.Ledger.Replication;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;

namespace Health.FhirGateway.Federation;

/// <summary>
/// What a custodian releases to another member: a patient's records, only against a permit the
/// custodian finds on its own applied ledger, issued for this custodian, this patient and the
/// calling member, and recent.
/// </summary>
public static class CustodianEndpoints
{
    /// <summary>
    /// The members-only route of a patient's records: the whole compartment, or with <c>type</c> and
    /// search parameters (other than the patient, which the permit names) a search of one type.
    /// </summary>
    public const string RecordsPath = "/internal/records";

    private static readonly string[] ControlParameters = ["patientKey", "permit", "type", "limit", "patient", "subject", "_count", "_offset", "_cursor"];

    /// <summary>Most records one answer carries; more are reported as truncated.</summary>
    public const int MaxRecords = 2000;

    /// <summary>How long a permit may be used after it was recorded.</summary>
    public static readonly TimeSpan PermitLifetime = TimeSpan.FromMinutes(2);

    /// <summary>How long a custodian waits for a permit to be applied here.</summary>
    public static readonly TimeSpan PermitWait = TimeSpan.FromSeconds(5);

    /// <summary>Maps the route.</summary>
    public static IEndpointRouteBuilder MapCustodianApi(this IEndpointRouteBuilder app)
    {
        app.MapGet(RecordsPath, RecordsAsync);
        return app;
    }

    private static async Task RecordsAsync(HttpContext context, LedgerNode node, ConsentLedger consents, RecordStore store, AccessGate gate, SearchIndexer indexer,
        string patientKey, long permit, string? type, int? limit)
    {
        var scope = type ?? AccessRequest.AllTypes;
        if (type is not null && !Capabilities.StoredTypes.Contains(type))
            throw RequestFailure.Invalid("Unknown resource type.");
        var caller = CallingMember(context, node);
        if (!await node.WaitForEntryAsync(permit, PermitWait, context.RequestAborted).ConfigureAwait(false))
            throw new RequestFailure(StatusCodes.Status503ServiceUnavailable, OperationOutcome.IssueType.Transient, $"Ledger index {permit} is not applied here yet.");
        var record = consents.Access(permit);
        if (record is null || record.Custodian != node.NodeId || record.PatientKey != patientKey || record.Gateway != caller
            || record.Scope != scope || !record.Decision.Permitted)
            throw RequestFailure.Forbidden($"Ledger index {permit} is not a permit for {caller} to read this patient's records here.");
        if (node.Store.LastTimestamp - record.Time > PermitLifetime.TotalMilliseconds)
            throw RequestFailure.Forbidden($"The permit at ledger index {permit} has expired; ask again.");
        var owner = store.OwnerOfPatientKey(patientKey) ?? throw RequestFailure.NotFound("No records about this patient are held here.");

        Searchset records;
        try
        {
            var query = type is null ? null : SearchQuery.Parse(type, Forwarded(context.Request.Query), indexer, strict: false);
            records = Records(store, owner, gate.FilterFor(owner, record.Decision), node.Self.HttpUrl, type, query, limit ?? MaxRecords);
        }
        catch (ResourceGoneException e)
        {
            throw new RequestFailure(StatusCodes.Status410Gone, OperationOutcome.IssueType.Deleted, e.Message);
        }

        context.Response.Headers[AccessHeaders.LedgerIndex] = permit.ToString(CultureInfo.InvariantCulture);
        await records.WriteAsync(context).ConfigureAwait(false);
    }

    /// <summary>The search parameters a gateway forwards: everything but the patient and paging, which the custodian decides.</summary>
    public static QueryCollection Forwarded(IQueryCollection query)
        => new(query.Where(q => !ControlParameters.Contains(q.Key)).ToDictionary());

    /// <summary>
    /// A patient's current records at this node as a searchset (all of them, or a search of
    /// <paramref name="type"/>): the first <paramref name="limit"/> (at most <see cref="MaxRecords"/>)
    /// and the total, with an outcome entry when <see cref="MaxRecords"/> cut the answer short.
    /// </summary>
    /// <remarks>A gateway showing matches from <c>_offset</c> on needs no more than <c>_offset + _count</c> from each custodian.</remarks>
    public static Searchset Records(RecordStore store, string owner, OwnerFilter filter, Uri nodeUrl, string? type = null, SearchQuery? query = null, int limit = MaxRecords)
    {
        var (page, total, next) = store.Search(type, query?.Criteria ?? [], int.Clamp(limit, 0, MaxRecords), 0, filter, query?.SortParameter, query?.SortDescending ?? false);
        var records = new Searchset(total);
        var fhirBase = new Uri(nodeUrl, "/fhir/").ToString();
        foreach (var resource in page)
            records.Entries.Add(new SearchsetEntry($"{fhirBase}{resource.Type}/{resource.Id}", resource.Json, SearchsetEntry.Match));
        if (next is not null && limit > MaxRecords)
            records.Entries.Add(Outcome(OperationOutcome.IssueType.TooCostly, $"Only the first {MaxRecords} of {total} records are included.", OperationOutcome.IssueSeverity.Warning));
        return records;
    }

    /// <summary>An outcome entry of a searchset (search mode outcome).</summary>
    public static SearchsetEntry Outcome(OperationOutcome.IssueType type, string message, OperationOutcome.IssueSeverity severity)
        => SearchsetEntry.Of(new OperationOutcome { Issue = [new OperationOutcome.IssueComponent { Severity = severity, Code = type, Diagnostics = message }] }, SearchsetEntry.Outcome);

    // Records leave a custodian only over mutual TLS, to a member whose certificate the ledger admits.
    private static string CallingMember(HttpContext context, LedgerNode node)
    {
        if (node.Identity is null)
            throw RequestFailure.Forbidden("Records are released to other members only over mutual TLS; this node runs without it.");
        if (context.Connection.ClientCertificate is not { } certificate || !node.IsAdmittedPeer(certificate))
            throw RequestFailure.Forbidden("Only admitted consortium members may call this, with their node certificate.");
        return Health.Ledger.Security.ConsortiumIdentity.NodeIdOf(certificate)!;
    }
}
