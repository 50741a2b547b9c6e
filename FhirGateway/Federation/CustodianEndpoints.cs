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
    /// <summary>The members-only route of a patient's whole compartment.</summary>
    public const string EverythingPath = "/internal/records/everything";

    /// <summary>Most records one answer carries; more are reported as truncated.</summary>
    public const int MaxRecords = 2000;

    /// <summary>How long a permit may be used after it was recorded.</summary>
    public static readonly TimeSpan PermitLifetime = TimeSpan.FromMinutes(2);

    /// <summary>How long a custodian waits for a permit to be applied here.</summary>
    public static readonly TimeSpan PermitWait = TimeSpan.FromSeconds(5);

    /// <summary>Maps the route.</summary>
    public static IEndpointRouteBuilder MapCustodianApi(this IEndpointRouteBuilder app)
    {
        app.MapGet(EverythingPath, EverythingAsync);
        return app;
    }

    private static async Task EverythingAsync(HttpContext context, LedgerNode node, ConsentLedger consents, RecordStore store, AccessGate gate, string patientKey, long permit)
    {
        var caller = CallingMember(context, node);
        if (!await node.WaitForEntryAsync(permit, PermitWait, context.RequestAborted).ConfigureAwait(false))
            throw new RequestFailure(StatusCodes.Status503ServiceUnavailable, OperationOutcome.IssueType.Transient, $"Ledger index {permit} is not applied here yet.");
        var record = consents.Access(permit);
        if (record is null || record.Custodian != node.NodeId || record.PatientKey != patientKey || record.Gateway != caller
            || record.Scope != AccessRequest.AllTypes || !record.Decision.Permitted)
            throw RequestFailure.Forbidden($"Ledger index {permit} is not a permit for {caller} to read this patient's records here.");
        if (node.Store.LastTimestamp - record.Time > PermitLifetime.TotalMilliseconds)
            throw RequestFailure.Forbidden($"The permit at ledger index {permit} has expired; ask again.");
        var owner = store.OwnerOfPatientKey(patientKey) ?? throw RequestFailure.NotFound("No records about this patient are held here.");

        Bundle bundle;
        try
        {
            bundle = Records(store, owner, gate.FilterFor(owner, record.Decision), node.Self.HttpUrl);
        }
        catch (ResourceGoneException e)
        {
            throw new RequestFailure(StatusCodes.Status410Gone, OperationOutcome.IssueType.Deleted, e.Message);
        }

        context.Response.Headers[AccessHeaders.LedgerIndex] = permit.ToString(CultureInfo.InvariantCulture);
        await FhirEndpoints.WriteAsync(context, bundle).ConfigureAwait(false);
    }

    /// <summary>A patient's current records at this node as a searchset, with an outcome entry when truncated.</summary>
    public static Bundle Records(RecordStore store, string owner, OwnerFilter filter, Uri nodeUrl)
    {
        var (page, total, next) = store.Search(null, [], MaxRecords, 0, filter);
        var bundle = new Bundle { Type = Bundle.BundleType.Searchset, Total = (int)long.Min(total, int.MaxValue) };
        var fhirBase = new Uri(nodeUrl, "/fhir/").ToString();
        foreach (var resource in page)
        {
            bundle.Entry.Add(new Bundle.EntryComponent
            {
                FullUrl = $"{fhirBase}{resource.Type}/{resource.Id}",
                Resource = FhirJson.Parse(resource.Json),
                Search = new Bundle.SearchComponent { Mode = Bundle.SearchEntryMode.Match },
            });
        }

        if (next is not null)
            bundle.Entry.Add(Outcome(OperationOutcome.IssueType.TooCostly, $"Only the first {MaxRecords} of {total} records are included.", OperationOutcome.IssueSeverity.Warning));
        return bundle;
    }

    /// <summary>An outcome entry of a searchset (search mode outcome).</summary>
    public static Bundle.EntryComponent Outcome(OperationOutcome.IssueType type, string message, OperationOutcome.IssueSeverity severity) => new()
    {
        Resource = new OperationOutcome { Issue = [new OperationOutcome.IssueComponent { Severity = severity, Code = type, Diagnostics = message }] },
        Search = new Bundle.SearchComponent { Mode = Bundle.SearchEntryMode.Outcome },
    };

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
