using System.Globalization;
using System.Security.Cryptography;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Fhir;
using Hl7.Fhir.Model;

namespace Health.FhirGateway.Records;

/// <summary>
/// Stores a transaction Bundle all-or-nothing, as Synthea writes them: POST entries with
/// <c>urn:uuid:</c> full URLs, references to those URLs or conditional references
/// (<c>Organization?identifier=system|value</c>) resolved against what is stored, and conditional
/// creates (<c>ifNoneExist</c>). Ids are assigned by this server.
/// </summary>
public sealed class TransactionProcessor(RecordStore store, SearchIndexer indexer, PatientPseudonyms pseudonyms, TimeProvider time)
{
    /// <summary>Most entries accepted in one Bundle.</summary>
    public const int MaxEntries = 20_000;

    private static readonly string[] PatientReferenceElements = ["subject", "patient", "beneficiary"];

    /// <summary>The result of a transaction: the response Bundle and the stored resources by patient.</summary>
    public sealed record Outcome(Bundle Response, IReadOnlyDictionary<string, List<StoredResource>> ByPatient, IReadOnlyList<Patient> Patients);

    /// <summary>Validates, resolves and stores every entry in one database transaction.</summary>
    /// <exception cref="RequestFailure">400/404/412/422 for a bundle that cannot be stored; nothing is written.</exception>
    public Outcome Process(Bundle bundle)
    {
        if (bundle.Type is not Bundle.BundleType.Transaction)
            throw RequestFailure.Invalid("Only transaction Bundles are processed at the base.");
        if (bundle.Entry.Count > MaxEntries)
            throw new RequestFailure(StatusCodes.Status413PayloadTooLarge, OperationOutcome.IssueType.TooCostly, $"A Bundle may hold at most {MaxEntries} entries.");

        var now = time.GetUtcNow();
        var planned = PlanEntries(bundle);
        ResolveReferences(planned);

        // Creates need nothing from the database: serialise and index them in parallel, before the
        // write transaction, so concurrent bundles hold SQLite's write lock only for their rows.
        var ready = new PreparedWrite?[planned.Count];
        Parallel.ForEach(planned.Where(e => e is { Method: Bundle.HTTPVerb.POST, ExistingId: null }), entry => ready[entry.Position] = Prepare(entry, 1, now));

        var byPatient = new Dictionary<string, List<StoredResource>>(StringComparer.Ordinal);
        var patients = new List<Patient>();
        var responses = new Bundle.EntryComponent[planned.Count];
        using var writer = store.BeginWrite();

        // FHIR's processing order: deletes, then creates (patients first, so their data keys exist), then updates.
        foreach (var entry in planned.OrderBy(e => e.Method switch { Bundle.HTTPVerb.DELETE => 0, Bundle.HTTPVerb.POST => 1, _ => 2 })
                     .ThenBy(e => e.Resource is Patient ? 0 : 1))
        {
            if (entry.ExistingId is { } existing)
            {
                responses[entry.Position] = Response(entry, $"{entry.Type}/{existing}", "200 OK");
                continue;
            }

            if (entry.Method == Bundle.HTTPVerb.DELETE)
            {
                responses[entry.Position] = Delete(writer, entry, now);
                continue;
            }

            var write = ready[entry.Position] ?? Prepare(entry, CheckUpdate(writer, entry) + 1, now);
            var stored = write.Stored;
            if (entry.Method == Bundle.HTTPVerb.PUT && writer.Current(entry.Type, entry.Id)!.Value.Owner != stored.Owner)
                throw new RequestFailure(StatusCodes.Status422UnprocessableEntity, OperationOutcome.IssueType.BusinessRule, $"Entry {entry.Position}: an update may not move a resource to another patient.");
            writer.Write(stored, write.Tokens, write.Dates, createKey: stored.Version == 1, write.PatientKey);
            if (stored.Owner != RecordStore.NodeOwner)
                (byPatient.TryGetValue(stored.Owner, out var list) ? list : byPatient[stored.Owner] = []).Add(stored);
            if (entry.Resource is Patient created && stored.Version == 1)
                patients.Add(created);
            responses[entry.Position] = Response(entry, $"{entry.Type}/{entry.Id}/_history/{stored.Version.ToString(CultureInfo.InvariantCulture)}", stored.Version == 1 ? "201 Created" : "200 OK");
        }

        writer.Commit();
        var response = new Bundle { Type = Bundle.BundleType.TransactionResponse };
        response.Entry.AddRange(responses);
        return new Outcome(response, byPatient, patients);
    }

    // A new version of an entry's resource: its id and meta set, serialised and indexed.
    private PreparedWrite Prepare(PlannedEntry entry, int version, DateTimeOffset now)
    {
        var resource = entry.Resource!;
        resource.Id = entry.Id;
        resource.Meta ??= new Meta();
        resource.Meta.VersionId = version.ToString(CultureInfo.InvariantCulture);
        resource.Meta.LastUpdated = now;
        var stored = new StoredResource(entry.Type, entry.Id, version, OwnerOf(resource), now.ToUnixTimeMilliseconds(), FhirJson.ToUtf8(resource));
        var (tokens, dates) = indexer.Index(resource);
        return new PreparedWrite(stored, tokens, dates, resource is Patient patient ? pseudonyms.KeyOf(patient) : null);
    }

    // The current version an update replaces, after its If-Match (a weak ETag) is checked.
    private static int CheckUpdate(RecordWriter writer, PlannedEntry entry)
    {
        var current = writer.Current(entry.Type, entry.Id)
            ?? throw RequestFailure.NotFound($"Entry {entry.Position}: {entry.Type}/{entry.Id} is not known; this server assigns ids, so create it with POST.");
        if (entry.IfMatch is { } ifMatch && ifMatch != $"W/\"{current.Version.ToString(CultureInfo.InvariantCulture)}\"")
            throw new RequestFailure(StatusCodes.Status412PreconditionFailed, OperationOutcome.IssueType.Conflict, $"Entry {entry.Position}: {entry.Type}/{entry.Id} is at version {current.Version}, not the one ifMatch names.");
        return current.Version;
    }

    private static Bundle.EntryComponent Delete(RecordWriter writer, PlannedEntry entry, DateTimeOffset now)
    {
        var current = writer.Current(entry.Type, entry.Id);
        if (current is { Deleted: false } found)
        {
            if (entry.IfMatch is { } ifMatch && ifMatch != $"W/\"{found.Version.ToString(CultureInfo.InvariantCulture)}\"")
                throw new RequestFailure(StatusCodes.Status412PreconditionFailed, OperationOutcome.IssueType.Conflict, $"Entry {entry.Position}: {entry.Type}/{entry.Id} is at version {found.Version}, not the one ifMatch names.");
            writer.Delete(entry.Type, entry.Id, found.Version, now.ToUnixTimeMilliseconds());
        }

        // Deleting what is not there (or no longer there) succeeds, as FHIR's delete does.
        return new Bundle.EntryComponent { Response = new Bundle.ResponseComponent { Status = "204 No Content" } };
    }

    private List<PlannedEntry> PlanEntries(Bundle bundle)
    {
        var planned = new List<PlannedEntry>(bundle.Entry.Count);
        var fullUrls = new HashSet<string>(StringComparer.Ordinal);
        var targets = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < bundle.Entry.Count; i++)
        {
            var entry = bundle.Entry[i];
            var method = entry.Request?.Method;
            var url = entry.Request?.Url ?? string.Empty;
            if (entry.FullUrl is { } fullUrl && !fullUrls.Add(fullUrl))
                throw RequestFailure.Invalid($"Entry {i}: fullUrl appears twice.");
            switch (method)
            {
                case Bundle.HTTPVerb.POST:
                {
                    var resource = entry.Resource ?? throw RequestFailure.Invalid($"Entry {i} has no resource.");
                    if (url != resource.TypeName)
                        throw RequestFailure.Invalid($"Entry {i}: request.url must be the resource type {resource.TypeName}.");
                    var existing = entry.Request!.IfNoneExist is { } condition ? FindSingle(resource.TypeName, condition, i) : null;
                    planned.Add(new PlannedEntry(i, Bundle.HTTPVerb.POST, resource.TypeName, resource, entry.FullUrl, Guid.CreateVersion7().ToString(), existing, null));
                    break;
                }

                case Bundle.HTTPVerb.PUT or Bundle.HTTPVerb.DELETE:
                {
                    var parts = url.Split('/');
                    if (parts.Length != 2 || !Fhir.Capabilities.StoredTypes.Contains(parts[0]) || parts[1].Length is 0 or > 64 || url.Contains('?', StringComparison.Ordinal))
                        throw RequestFailure.Invalid($"Entry {i}: request.url must be Type/id (conditional updates and deletes are not supported).");
                    if (!targets.Add(url))
                        throw RequestFailure.Invalid($"Entry {i}: {parts[0]} {parts[1]} appears in more than one entry.");
                    var resource = entry.Resource;
                    if (method == Bundle.HTTPVerb.PUT && (resource is null || resource.TypeName != parts[0] || (resource.Id is not null && resource.Id != parts[1])))
                        throw RequestFailure.Invalid($"Entry {i}: an update carries the {parts[0]} with id {parts[1]}.");
                    planned.Add(new PlannedEntry(i, method.Value, parts[0], method == Bundle.HTTPVerb.PUT ? resource : null, entry.FullUrl, parts[1], null, entry.Request!.IfMatch));
                    break;
                }

                default:
                    throw new RequestFailure(StatusCodes.Status422UnprocessableEntity, OperationOutcome.IssueType.NotSupported, $"Entry {i}: only POST, PUT and DELETE entries are processed in a transaction.");
            }
        }

        return planned;
    }

    private void ResolveReferences(List<PlannedEntry> planned)
    {
        var targets = planned.Where(e => e.FullUrl is not null)
            .ToDictionary(e => e.FullUrl!, e => $"{e.Type}/{e.ExistingId ?? e.Id}", StringComparer.Ordinal);

        // Synthea names the same organisations and practitioners in most entries: look each up once.
        var conditional = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in planned.Where(e => e.Resource is not null))
        {
            foreach (var reference in ReferenceWalker.All(entry.Resource!))
            {
                if (reference.Reference is not { } value || value.StartsWith('#'))
                    continue;
                if (value.StartsWith("urn:uuid:", StringComparison.Ordinal) || value.StartsWith("urn:oid:", StringComparison.Ordinal))
                {
                    reference.Reference = targets.TryGetValue(value, out var target)
                        ? target
                        : throw new RequestFailure(StatusCodes.Status422UnprocessableEntity, OperationOutcome.IssueType.NotFound, "A reference points to a urn that no entry of the Bundle has.");
                }
                else if (value.Contains('?', StringComparison.Ordinal))
                {
                    if (!conditional.TryGetValue(value, out var target))
                    {
                        var type = value[..value.IndexOf('?', StringComparison.Ordinal)];
                        conditional[value] = target = $"{type}/{FindSingle(type, value[(type.Length + 1)..], null) ?? throw new RequestFailure(StatusCodes.Status422UnprocessableEntity, OperationOutcome.IssueType.NotFound, $"A conditional reference to {type} matches nothing stored.")}";
                    }

                    reference.Reference = target;
                }
            }
        }
    }

    // Conditions are limited to one identifier=system|value, which is what Synthea writes.
    private string? FindSingle(string type, string condition, int? entry)
    {
        var parameter = SearchParameters.For(type).First(p => p.Name == "identifier");
        if (!condition.StartsWith("identifier=", StringComparison.Ordinal) || condition.Contains('&', StringComparison.Ordinal))
            throw RequestFailure.Invalid($"{(entry is { } i ? $"Entry {i}: " : string.Empty)}conditions other than one identifier=system|value are not supported.");
        var value = Uri.UnescapeDataString(condition["identifier=".Length..]);
        var matches = store.FindByToken(type, indexer.QueryToken(parameter, value)!);
        return matches.Count switch
        {
            0 => null,
            1 => matches[0],
            _ => throw new RequestFailure(StatusCodes.Status412PreconditionFailed, OperationOutcome.IssueType.MultipleMatches, $"The condition on {type} matches more than one resource."),
        };
    }

    /// <summary>The patient whose compartment holds a resource, or <see cref="RecordStore.NodeOwner"/>.</summary>
    public static string OwnerOf(Resource resource)
    {
        if (resource is Patient)
            return resource.Id!;
        foreach (var name in PatientReferenceElements)
        {
            if (resource.TryGetValue(name, out var value) && value is ResourceReference { Reference: { } reference }
                && reference.StartsWith("Patient/", StringComparison.Ordinal))
                return reference["Patient/".Length..];
        }

        return RecordStore.NodeOwner;
    }

    private static Bundle.EntryComponent Response(PlannedEntry entry, string location, string status) => new()
    {
        FullUrl = entry.FullUrl,
        Response = new Bundle.ResponseComponent { Status = status, Location = location },
    };

    /// <summary>SHA-256 over a patient's stored resources, in order: the content hash of a locator.</summary>
    public static string ContentHash(IEnumerable<StoredResource> resources)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var resource in resources)
            hash.AppendData(resource.Json);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private sealed record PreparedWrite(StoredResource Stored, IReadOnlyList<byte[]> Tokens,
        IReadOnlyList<(string Param, long Low, long High)> Dates, string? PatientKey);

    private sealed record PlannedEntry(int Position, Bundle.HTTPVerb Method, string Type, Resource? Resource, string? FullUrl, string Id, string? ExistingId, string? IfMatch);
}
