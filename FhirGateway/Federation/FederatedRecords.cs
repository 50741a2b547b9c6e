using System.Globalization;
using Health.Consent.Policy;
using Health.Consent.Projection;
using Health.FhirGateway.Access;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Fhir;
using Health.FhirGateway.Records;
using Health.Ledger.Replication;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;

namespace Health.FhirGateway.Federation;

/// <summary>
/// A patient's records from every custodian the ledger names: one access request per custodian
/// (this node is the gateway of each permit), then each permitted custodian is asked over mutual
/// TLS with its permit's ledger index, and the answers are merged into one searchset. A custodian
/// that is down, slow or refuses leaves an outcome entry in the Bundle, never a silent gap.
/// </summary>
public sealed partial class FederatedRecords(LedgerNode node, ConsentLedger consents, AccessGate gate, RecordStore store, IHttpClientFactory clients, ILogger<FederatedRecords> logger)
{
    /// <summary>The name of the resilient HTTP client that calls custodians.</summary>
    public const string ClientName = "custodians";

    /// <summary>Whether records can be gathered from other members (they are only released over mutual TLS).</summary>
    public bool Enabled => node.Identity is not null;

    /// <summary>Every custodian's records about a patient, paged with <paramref name="offset"/> and <paramref name="count"/>.</summary>
    /// <exception cref="RequestFailure">404 when no custodian is known; 403 when every custodian's request is denied.</exception>
    public Task<Searchset> EverythingAsync(HttpContext context, SmartAccess access, string patientKey, int count, int offset)
        => GatherAsync(context, access, patientKey, null, null, count, offset);

    /// <summary>A search of one type over a patient's records at every custodian, merged and paged.</summary>
    /// <exception cref="RequestFailure">404 when no custodian is known; 403 when every custodian's request is denied.</exception>
    public Task<Searchset> SearchAsync(HttpContext context, SmartAccess access, string patientKey, string type, SearchQuery query, int offset)
        => GatherAsync(context, access, patientKey, type, query, query.Count, offset);

    private async Task<Searchset> GatherAsync(HttpContext context, SmartAccess access, string patientKey, string? type, SearchQuery? query, int count, int offset)
    {
        var who = AccessContext.From(context, access);
        var custodians = consents.CustodiansOf(patientKey);
        if (custodians.Count == 0)
            throw RequestFailure.NotFound("No custodian in the consortium holds records about this patient.");
        var token = context.RequestAborted;
        var requests = await Task.WhenAll(custodians.Select(c => gate.RequestAtCustodianAsync(who, patientKey, c, type ?? AccessRequest.AllTypes, type is null ? "everything" : "search", token))).ConfigureAwait(false);
        context.Response.Headers[AccessHeaders.LedgerIndex] = string.Join(',', requests.Select(r => r.Index.ToString(CultureInfo.InvariantCulture)));
        if (requests.All(r => !r.Decision.Permitted))
            throw AccessGate.Denied(requests[0]);

        // Custodian by custodian, the merged matches are each one's in its order; a page from
        // _offset needs at most _offset + _count of them from each, and the totals place them.
        var limit = (int)long.Min((long)offset + count, int.MaxValue);
        var parts = await Task.WhenAll(requests.Select(r => r.Decision.Permitted
            ? FetchAsync(context, r, patientKey, type, query, limit, token)
            : Task.FromResult(new Part([CustodianEndpoints.Outcome(OperationOutcome.IssueType.Forbidden,
                $"Records at {r.Custodian} were not released: {r.Decision.Reason} (ledger index {r.Index}).", OperationOutcome.IssueSeverity.Warning)], 0)))).ConfigureAwait(false);
        var matches = parts.SelectMany(p => p.Entries).Where(e => e.Mode == SearchsetEntry.Match);
        var outcomes = parts.SelectMany(p => p.Entries).Where(e => e.Mode != SearchsetEntry.Match);
        var total = parts.Sum(p => p.Total);
        var merged = new Searchset(total);
        merged.Links.Add(("self", $"{context.Request.Scheme}://{context.Request.Host}{context.Request.Path}{context.Request.QueryString}"));
        merged.Entries.AddRange(matches.Skip(offset).Take(count));
        merged.Entries.AddRange(outcomes);
        if (offset + count < total)
            merged.Links.Add(("next", NextLink(context, offset + count, count)));
        return merged;
    }

    // One custodian's first matches (and outcome entries), and how many it has in all.
    private sealed record Part(IReadOnlyList<SearchsetEntry> Entries, long Total)
    {
        public static Part Of(Searchset records) => new(records.Entries, records.Total ?? records.Entries.Count(e => e.Mode == SearchsetEntry.Match));
    }

    private async Task<Part> FetchAsync(HttpContext context, AccessRecord permit, string patientKey, string? type, SearchQuery? query, int limit, CancellationToken token)
    {
        if (permit.Custodian == node.NodeId)
        {
            var owner = store.OwnerOfPatientKey(patientKey);
            return owner is null ? new Part([], 0) : Part.Of(CustodianEndpoints.Records(store, owner, gate.FilterFor(owner, permit.Decision), node.Self.HttpUrl, type, query, limit));
        }

        var custodian = node.Members.FirstOrDefault(m => m.NodeId == permit.Custodian);
        if (custodian is null)
            return Unavailable(permit.Custodian, "it is not a current member");
        var forwarded = type is null ? string.Empty : "&type=" + type + string.Concat(CustodianEndpoints.Forwarded(context.Request.Query)
            .SelectMany(q => q.Value.Select(v => $"&{Uri.EscapeDataString(q.Key)}={Uri.EscapeDataString(v ?? string.Empty)}")));
        var uri = new Uri(custodian.HttpUrl, $"{CustodianEndpoints.RecordsPath}?patientKey={patientKey}&permit={permit.Index.ToString(CultureInfo.InvariantCulture)}&limit={limit.ToString(CultureInfo.InvariantCulture)}{forwarded}");
        try
        {
            using var response = await clients.CreateClient(ClientName).GetAsync(uri, token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
                return Unavailable(permit.Custodian, $"it answered {(int)response.StatusCode}");
            var stream = await response.Content.ReadAsStreamAsync(token).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                try
                {
                    return Part.Of(await Searchset.ReadAsync(stream, token).ConfigureAwait(false));
                }
                catch (FormatException)
                {
                    return Unavailable(permit.Custodian, "its answer was not a searchset Bundle");
                }
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or TimeoutException or Polly.ExecutionRejectedException or RequestFailure)
        {
            LogCustodianUnavailable(logger, permit.Custodian, e.GetType().Name);
            return Unavailable(permit.Custodian, "it did not answer in time");
        }
    }

    private static Part Unavailable(string custodian, string why)
        => new([CustodianEndpoints.Outcome(OperationOutcome.IssueType.Transient, $"Records at {custodian} are missing from this result: {why}.", OperationOutcome.IssueSeverity.Warning)], 0);

    private static string NextLink(HttpContext context, int offset, int count)
    {
        var query = context.Request.Query.Where(q => q.Key is not ("_offset" or "_count"))
            .SelectMany(q => q.Value.Select(v => $"{Uri.EscapeDataString(q.Key)}={Uri.EscapeDataString(v ?? string.Empty)}"))
            .Append($"_count={count.ToString(CultureInfo.InvariantCulture)}").Append($"_offset={offset.ToString(CultureInfo.InvariantCulture)}");
        return $"{context.Request.Scheme}://{context.Request.Host}{context.Request.Path}?{string.Join('&', query)}";
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "Custodian {Custodian} did not answer ({Failure}); the result is partial")]
    private static partial void LogCustodianUnavailable(ILogger logger, string custodian, string failure);
}
