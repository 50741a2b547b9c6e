using System.Globalization;
using Health.Consent.Projection;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Fhir;
using Health.FhirGateway.Records;
using Health.Ledger.Merkle;
using Health.Ledger.Replication;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;

namespace Health.FhirGateway.Audit;

/// <summary>
/// <c>GET /fhir/AuditEvent</c> for auditors: the access requests on the ledger as BALP
/// AuditEvents, searched by <c>patient</c>, <c>agent</c>, <c>date</c> (ge/le/gt/lt), <c>outcome</c>
/// (0 permitted, 4 denied) and <c>purpose</c>, paged in ledger order.
/// </summary>
public static class AuditEventSearch
{
    private const int DefaultCount = 50;
    private const int MaxCount = 500;

    /// <summary>Maps the route (ahead of the generic type search).</summary>
    public static IEndpointRouteBuilder MapAuditEventSearch(this IEndpointRouteBuilder app)
    {
        app.MapGet("/fhir/AuditEvent", SearchAsync).RequireAuthorization();
        return app;
    }

    private static async Task SearchAsync(HttpContext context, ConsentLedger consents, LedgerNode node, PatientPseudonyms pseudonyms)
    {
        SmartAccess.From(context.User).RequireRole("auditor");
        var query = context.Request.Query;
        var patientKey = query["patient"].FirstOrDefault() is { } patient
            ? pseudonyms.KeyOfToken(patient) ?? throw RequestFailure.Invalid($"Name the patient as {PatientPseudonyms.TokenForms}.")
            : null;

        long? from = null, to = null;
        foreach (var date in query["date"].OfType<string>())
        {
            var prefix = date.Length > 2 && char.IsLetter(date[0]) ? date[..2] : "eq";
            var range = DateRanges.Parse(prefix == "eq" ? date : date[2..]) ?? throw RequestFailure.Invalid("date must be a FHIR date or instant with an optional ge, gt, le or lt prefix.");
            switch (prefix)
            {
                case "ge":
                    from = range.Low;
                    break;
                case "gt":
                    from = range.High + 1;
                    break;
                case "le":
                    to = range.High;
                    break;
                case "lt":
                    to = range.Low - 1;
                    break;
                case "eq":
                    (from, to) = (range.Low, range.High);
                    break;
                default:
                    throw RequestFailure.Invalid("date prefixes are ge, gt, le, lt and eq.");
            }
        }

        bool? permitted = query["outcome"].FirstOrDefault() switch
        {
            null => null,
            "0" => true,
            "4" => false,
            _ => throw RequestFailure.Invalid("outcome is 0 (permitted) or 4 (denied)."),
        };
        var count = query["_count"].FirstOrDefault() is { } countText
            ? int.TryParse(countText, NumberStyles.None, CultureInfo.InvariantCulture, out var c) && c <= MaxCount ? c : throw RequestFailure.Invalid($"_count must be 0 to {MaxCount}.")
            : DefaultCount;
        var after = query["_cursor"].FirstOrDefault() is { } cursor
            ? long.TryParse(cursor, NumberStyles.None, CultureInfo.InvariantCulture, out var a) ? a : throw RequestFailure.Invalid("_cursor is not one this server made.")
            : 0;
        var purpose = query["purpose"].FirstOrDefault();
        var (indices, total) = consents.SearchAccesses(patientKey, query["agent"].FirstOrDefault(), from, to, permitted, purpose, after, count + 1);

        var bundle = new Bundle { Type = Bundle.BundleType.Searchset, Total = (int)long.Min(total, int.MaxValue) };
        var fhirBase = $"{context.Request.Scheme}://{context.Request.Host}/fhir";
        bundle.Link.Add(new Bundle.LinkComponent { Relation = "self", Url = $"{fhirBase}/AuditEvent{context.Request.QueryString}" });
        foreach (var index in indices.Take(count))
        {
            var entry = node.Store.ReadEntry(index)!;
            var json = AuditEventWriter.Write(entry, MerkleHash.Leaf(entry.ToCanonicalBytes()), consents.Access(index)!.Decision);
            bundle.Entry.Add(new Bundle.EntryComponent { FullUrl = $"{fhirBase}/AuditEvent/ledger-{index}", Resource = FhirJson.Parse(json), Search = new Bundle.SearchComponent { Mode = Bundle.SearchEntryMode.Match } });
        }

        if (indices.Count > count)
        {
            var rest = string.Join('&', query.Where(q => q.Key != "_cursor").SelectMany(q => q.Value.Select(v => $"{Uri.EscapeDataString(q.Key)}={Uri.EscapeDataString(v ?? string.Empty)}")));
            bundle.Link.Add(new Bundle.LinkComponent { Relation = "next", Url = $"{fhirBase}/AuditEvent?{rest}&_cursor={indices[count - 1].ToString(CultureInfo.InvariantCulture)}" });
        }

        await FhirEndpoints.WriteAsync(context, bundle).ConfigureAwait(false);
    }
}
