using System.Globalization;
using Health.Consent;
using Health.Consent.Policy;
using Health.FhirGateway.Access;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Federation;
using Health.FhirGateway.Records;
using Health.Ledger.Entries;
using Health.Ledger.Replication;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Mvc;
using Task = System.Threading.Tasks.Task;

namespace Health.FhirGateway.Fhir;

/// <summary>
/// The FHIR R4 API at <c>/fhir</c>: capability statement, transaction ingest, read, vread and
/// search over the encrypted record store, and the operator's crypto-shredding operation.
/// </summary>
public static partial class FhirEndpoints
{
    /// <summary>Largest request body, in bytes.</summary>
    public const long MaxBody = 32L * 1024 * 1024;


    /// <summary>Maps the routes.</summary>
    public static IEndpointRouteBuilder MapFhirApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/fhir/metadata", (HttpContext context) => WriteAsync(context, Capabilities.Statement(context)));
        app.MapGet("/fhir/.well-known/smart-configuration", SmartConfiguration);
        var fhir = app.MapGroup("/fhir").RequireAuthorization();
        fhir.MapPost("/", TransactionAsync).WithMetadata(new RequestSizeLimitAttribute(MaxBody));
        fhir.MapGet("/{type}", SearchAsync);
        fhir.MapGet("/{type}/{id}", ReadAsync);
        fhir.MapGet("/{type}/{id}/_history/{version}", VersionReadAsync);
        fhir.MapPost("/Patient/{id}/$crypto-shred", ShredAsync);
        fhir.MapGet("/Patient/{id}/$everything", EverythingAsync);
        fhir.MapGet("/Patient/$everything", EverythingByIdentifierAsync);
        MapWrites(fhir);
        return app;
    }

    private static IResult SmartConfiguration(HttpContext context) => Results.Json(new Dictionary<string, object>
    {
        ["issuer"] = DevTokenIssuer.Issuer,
        ["grant_types_supported"] = new[] { "client_credentials", "authorization_code" },
        ["scopes_supported"] = new[] { "patient/*.rs", "user/*.rs", "system/*.cruds" },
        ["capabilities"] = new[] { "permission-v2", "permission-patient", "permission-user", "client-confidential-asymmetric" },
        ["code_challenge_methods_supported"] = new[] { "S256" },
    });

    private static async Task TransactionAsync(HttpContext context, TransactionProcessor processor, PatientPseudonyms pseudonyms, LedgerNode ledger, Hosting.GatewayMetrics metrics)
    {
        SmartAccess.From(context.User).RequireRole("operator");
        RequireFhirJson(context);
        if (await FhirJson.ReadAsync(context.Request.Body, context.RequestAborted).ConfigureAwait(false) is not Bundle bundle)
            throw RequestFailure.Invalid("POST a transaction or batch Bundle to the base.");
        if (bundle.Entry.Any(e => e.Resource is Hl7.Fhir.Model.Consent || e.Request?.Url?.StartsWith("Consent", StringComparison.Ordinal) == true))
            throw new RequestFailure(StatusCodes.Status422UnprocessableEntity, OperationOutcome.IssueType.NotSupported, "A Consent is created on its own (POST /fhir/Consent), so that it is put on the ledger.");
        if (bundle.Type == Bundle.BundleType.Batch)
        {
            await WriteAsync(context, await ProcessBatchAsync(bundle, processor, pseudonyms, ledger, context.RequestAborted).ConfigureAwait(false)).ConfigureAwait(false);
            return;
        }

        var outcome = processor.Process(bundle);
        metrics.RecordIngest(outcome.Response.Entry.Count);
        await LocateAsync(context, outcome, pseudonyms, ledger).ConfigureAwait(false);
        await WriteAsync(context, outcome.Response).ConfigureAwait(false);
    }

    // A batch is a list of independent requests: each entry is stored or refused on its own and
    // its outcome is reported in the response entry at the same position.
    private static async Task<Bundle> ProcessBatchAsync(Bundle bundle, TransactionProcessor processor, PatientPseudonyms pseudonyms, LedgerNode ledger, CancellationToken token)
    {
        if (bundle.Entry.Count > TransactionProcessor.MaxEntries)
            throw new RequestFailure(StatusCodes.Status413PayloadTooLarge, OperationOutcome.IssueType.TooCostly, $"A Bundle may hold at most {TransactionProcessor.MaxEntries} entries.");
        var response = new Bundle { Type = Bundle.BundleType.BatchResponse };
        foreach (var entry in bundle.Entry)
        {
            try
            {
                var single = new Bundle { Type = Bundle.BundleType.Transaction, Entry = [entry] };
                var outcome = processor.Process(single);
                await LocateAsync(null, outcome, pseudonyms, ledger, token).ConfigureAwait(false);
                response.Entry.Add(outcome.Response.Entry[0]);
            }
            catch (RequestFailure failure)
            {
                response.Entry.Add(new Bundle.EntryComponent
                {
                    FullUrl = entry.FullUrl,
                    Response = new Bundle.ResponseComponent
                    {
                        Status = failure.StatusCode.ToString(CultureInfo.InvariantCulture),
                        Outcome = new OperationOutcome { Issue = [new OperationOutcome.IssueComponent { Severity = OperationOutcome.IssueSeverity.Error, Code = failure.IssueType, Diagnostics = failure.Message }] },
                    },
                });
            }
        }

        return response;
    }

    private static Task LocateAsync(HttpContext context, TransactionProcessor.Outcome outcome, PatientPseudonyms pseudonyms, LedgerNode ledger)
        => LocateAsync(context, outcome, pseudonyms, ledger, context.RequestAborted);

    private static async Task LocateAsync(HttpContext? context, TransactionProcessor.Outcome outcome, PatientPseudonyms pseudonyms, LedgerNode ledger, CancellationToken token)
    {
        // One locator per patient per bundle; the patient appears on the ledger only as a pseudonym.
        foreach (var patient in outcome.Patients)
        {
            var patientKey = pseudonyms.KeyOf(patient);
            var command = new LedgerCommand(ConsentEntryKinds.RecordsLocated.Name, new Dictionary<string, string>
            {
                ["patientKey"] = patientKey,
                ["custodian"] = ledger.NodeId,
                ["contentHash"] = TransactionProcessor.ContentHash(outcome.ByPatient.GetValueOrDefault(patient.Id!, [])),
            });
            var located = await ledger.AppendAsync(command, token).ConfigureAwait(false);
            if (context is not null)
                context.Response.Headers["X-Ledger-Index"] = located.Index.ToString(CultureInfo.InvariantCulture);
        }
    }

    private static async Task ReadAsync(HttpContext context, RecordStore store, AccessGate gate, string type, string id)
        => await WriteStoredAsync(context, await ReadAuthorizedAsync(context, store, gate, type, id, null).ConfigureAwait(false)).ConfigureAwait(false);

    private static async Task VersionReadAsync(HttpContext context, RecordStore store, AccessGate gate, string type, string id, string version)
    {
        if (!int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number < 1)
            throw RequestFailure.NotFound($"{type}/{id} has no version {version}.");
        await WriteStoredAsync(context, await ReadAuthorizedAsync(context, store, gate, type, id, number).ConfigureAwait(false)).ConfigureAwait(false);
    }

    private static async Task<StoredResource> ReadAuthorizedAsync(HttpContext context, RecordStore store, AccessGate gate, string type, string id, int? version)
    {
        await AuthorizeExistingAsync(context, store, gate, type, id, 'r', version is null ? "read" : "vread").ConfigureAwait(false);
        try
        {
            return store.Read(type, id, version) ?? throw RequestFailure.NotFound($"{type}/{id}{(version is null ? string.Empty : $"/_history/{version}")} is not known.");
        }
        catch (ResourceGoneException e)
        {
            throw new RequestFailure(StatusCodes.Status410Gone, OperationOutcome.IssueType.Deleted, e.Message);
        }
    }

    private static async Task SearchAsync(HttpContext context, RecordStore store, SearchIndexer indexer, AccessGate gate, FederatedRecords federation, string type)
    {
        RequireKnownType(type);
        var access = SmartAccess.From(context.User);
        access.RequireScope(type, 's');
        var query = SearchQuery.Parse(type, new QueryCollection(context.Request.Query.Where(q => q.Key != "_offset").ToDictionary()), indexer, Strict(context));

        // A search of one patient's records by someone outside their compartment covers every custodian.
        if (AccessGate.Applies(access) && federation.Enabled && type != "Patient" && NamedPatient(context) is { } named && store.PatientKeyOf(named) is { } patientKey)
        {
            var offset = int.TryParse(context.Request.Query["_offset"].FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) ? parsed : 0;
            await (await federation.SearchAsync(context, access, patientKey, type, query, offset).ConfigureAwait(false)).WriteAsync(context).ConfigureAwait(false);
            return;
        }

        var owners = access.CompartmentPatient is { } patient
            ? OwnerFilter.Only(patient)
            : await gate.AuthorizeSearchAsync(context, access, store.MatchingOwners(type, query.Criteria, AccessGate.MaxPatientsPerSearch), type, query.NamesPatient).ConfigureAwait(false);
        var (page, total, next) = store.Search(type, query.Criteria, query.Count, query.After, owners, query.SortParameter, query.SortDescending);
        var searchset = SearchPage(context, $"{type}", query, page, total, next);
        if (query.IncludePatients)
        {
            foreach (var owner in page.Select(r => r.Owner).Where(o => o != RecordStore.NodeOwner && type != "Patient").Distinct(StringComparer.Ordinal))
            {
                if (store.Read("Patient", owner) is { } included)
                    searchset.Entries.Add(Entry(context, included, SearchsetEntry.Include));
            }
        }

        await searchset.WriteAsync(context).ConfigureAwait(false);
    }

    private static async Task EverythingAsync(HttpContext context, RecordStore store, SearchIndexer indexer, AccessGate gate, FederatedRecords federation, string id)
    {
        var access = SmartAccess.From(context.User);
        access.RequireScope("Patient", 'r');
        access.RequireCompartment(id);
        if (store.Current("Patient", id) is not { Deleted: false })
            throw RequestFailure.NotFound($"Patient/{id} is not known.");
        if (AccessGate.Applies(access) && federation.Enabled && store.PatientKeyOf(id) is { } patientKey)
        {
            await WriteFederatedAsync(context, federation, access, patientKey, indexer).ConfigureAwait(false);
            return;
        }

        var owners = AccessGate.Applies(access)
            ? gate.FilterFor(id, await gate.AuthorizeAsync(context, access, id, AccessRequest.AllTypes, "everything").ConfigureAwait(false))
            : OwnerFilter.Only(id);
        var query = SearchQuery.Parse("Patient", context.Request.Query, indexer, strict: false);
        try
        {
            var (page, total, next) = store.Search(null, [], query.Count, query.After, owners);
            await SearchPage(context, $"Patient/{id}/$everything", query, page, total, next).WriteAsync(context).ConfigureAwait(false);
        }
        catch (ResourceGoneException e)
        {
            throw new RequestFailure(StatusCodes.Status410Gone, OperationOutcome.IssueType.Deleted, e.Message);
        }
    }

    // The one patient a search names with patient= or subject= (Patient/id or id), or null.
    private static string? NamedPatient(HttpContext context)
    {
        var values = context.Request.Query["patient"].Concat(context.Request.Query["subject"]).OfType<string>().ToList();
        if (values.Count != 1 || values[0].Contains(',', StringComparison.Ordinal))
            return null;
        var value = values[0];
        return value.StartsWith("Patient/", StringComparison.Ordinal) ? value["Patient/".Length..] : value.Contains('/', StringComparison.Ordinal) ? null : value;
    }

    // A patient named by a consortium identifier (the one pseudonyms are made from), whichever
    // members hold them: every custodian's records, gathered through the ledger.
    private static async Task EverythingByIdentifierAsync(HttpContext context, PatientPseudonyms pseudonyms, SearchIndexer indexer, FederatedRecords federation)
    {
        var access = SmartAccess.From(context.User);
        access.RequireScope("Patient", 'r');
        if (!AccessGate.Applies(access))
            throw RequestFailure.Forbidden("Patients use Patient/{id}/$everything with their own id.");
        if (!federation.Enabled)
            throw new RequestFailure(StatusCodes.Status501NotImplemented, OperationOutcome.IssueType.NotSupported, "This node runs without mutual TLS, so it cannot gather records from other members.");
        var patientKey = context.Request.Query["identifier"].FirstOrDefault() is { } identifier ? pseudonyms.KeyOfToken(identifier) : null;
        await WriteFederatedAsync(context, federation, access, patientKey ?? throw RequestFailure.Invalid($"Name the patient with identifier={PatientPseudonyms.TokenForms}."), indexer).ConfigureAwait(false);
    }

    private static async Task WriteFederatedAsync(HttpContext context, FederatedRecords federation, SmartAccess access, string patientKey, SearchIndexer indexer)
    {
        var query = SearchQuery.Parse("Patient", new QueryCollection(context.Request.Query.Where(q => q.Key is not ("identifier" or "_offset")).ToDictionary()), indexer, strict: false);
        var offset = int.TryParse(context.Request.Query["_offset"].FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) ? parsed : 0;
        await (await federation.EverythingAsync(context, access, patientKey, query.Count, offset).ConfigureAwait(false)).WriteAsync(context).ConfigureAwait(false);
    }

    private static Searchset SearchPage(HttpContext context, string path, SearchQuery query, IReadOnlyList<StoredResource> page, long total, long? next)
    {
        var searchset = new Searchset(total);
        searchset.Links.Add(("self", $"{Base(context)}/{path}{context.Request.QueryString}"));
        if (next is { } cursor)
            searchset.Links.Add(("next", $"{Base(context)}/{path}?{query.NextQuery(cursor)}"));
        foreach (var resource in page)
            searchset.Entries.Add(Entry(context, resource, SearchsetEntry.Match));
        return searchset;
    }

    private static SearchsetEntry Entry(HttpContext context, StoredResource resource, string mode)
        => new($"{Base(context)}/{resource.Type}/{resource.Id}", resource.Json, mode);

    private static async Task ShredAsync(HttpContext context, RecordStore store, string id)
    {
        SmartAccess.From(context.User).RequireRole("operator");
        if (!store.Shred(id))
            throw RequestFailure.NotFound($"Patient/{id} has no records here.");
        await WriteAsync(context, new OperationOutcome
        {
            Issue = [new OperationOutcome.IssueComponent { Severity = OperationOutcome.IssueSeverity.Information, Code = OperationOutcome.IssueType.Informational, Diagnostics = $"The data key of Patient/{id} was destroyed; its records can no longer be read." }],
        }).ConfigureAwait(false);
    }

    private static async Task WriteStoredAsync(HttpContext context, StoredResource resource)
    {
        context.Response.Headers.ETag = $"W/\"{resource.Version.ToString(CultureInfo.InvariantCulture)}\"";
        context.Response.Headers.LastModified = DateTimeOffset.FromUnixTimeMilliseconds(resource.LastUpdated).ToString("R", CultureInfo.InvariantCulture);
        await WriteJsonAsync(context, resource.Json).ConfigureAwait(false);
    }

    /// <summary>Writes a resource as the response.</summary>
    public static Task WriteAsync(HttpContext context, Resource resource) => WriteJsonAsync(context, FhirJson.ToUtf8(resource));

    /// <summary>Writes FHIR JSON already serialised as the response.</summary>
    public static async Task WriteJsonAsync(HttpContext context, byte[] json)
    {
        context.Response.ContentType = "application/fhir+json; charset=utf-8";
        context.Response.ContentLength = json.Length;
        await context.Response.Body.WriteAsync(json, context.RequestAborted).ConfigureAwait(false);
    }

    private static string Base(HttpContext context) => $"{context.Request.Scheme}://{context.Request.Host}/fhir";

    private static bool Strict(HttpContext context)
        => context.Request.Headers["Prefer"].Any(p => p is not null && p.Replace(" ", string.Empty, StringComparison.Ordinal).Contains("handling=strict", StringComparison.OrdinalIgnoreCase));

    private static void RequireKnownType(string type)
    {
        if (!Capabilities.StoredTypes.Contains(type))
            throw new RequestFailure(StatusCodes.Status404NotFound, OperationOutcome.IssueType.NotSupported, $"Resource type '{(type.Length > 64 ? type[..64] : type)}' is not supported.");
    }

    private static void RequireFhirJson(HttpContext context)
    {
        var mediaType = context.Request.ContentType?.Split(';')[0].Trim();
        if (mediaType is not ("application/fhir+json" or "application/json"))
            throw new RequestFailure(StatusCodes.Status415UnsupportedMediaType, OperationOutcome.IssueType.NotSupported, "Send FHIR resources as application/fhir+json.");
    }
}
