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

        var byPatient = new Dictionary<string, List<StoredResource>>(StringComparer.Ordinal);
        var patients = new List<Patient>();
        var response = new Bundle { Type = Bundle.BundleType.TransactionResponse };
        using var writer = store.BeginWrite();
        foreach (var entry in planned.OrderBy(e => e.Resource is Patient ? 0 : 1))
        {
            if (entry.ExistingId is { } existing)
            {
                response.Entry.Add(Response(entry, $"{entry.Resource.TypeName}/{existing}", "200 OK"));
                continue;
            }

            var resource = entry.Resource;
            resource.Id = entry.NewId;
            resource.Meta ??= new Meta();
            resource.Meta.VersionId = "1";
            resource.Meta.LastUpdated = now;
            var owner = OwnerOf(resource);
            var stored = new StoredResource(resource.TypeName, entry.NewId, 1, owner, now.ToUnixTimeMilliseconds(), FhirJson.ToUtf8(resource));
            var (tokens, dates) = indexer.Index(resource);
            writer.Write(stored, tokens, dates, createKey: true, resource is Patient patient ? pseudonyms.KeyOf(patient) : null);
            if (owner != RecordStore.NodeOwner)
                (byPatient.TryGetValue(owner, out var list) ? list : byPatient[owner] = []).Add(stored);
            if (resource is Patient created)
                patients.Add(created);
            response.Entry.Add(Response(entry, $"{resource.TypeName}/{entry.NewId}/_history/1", "201 Created"));
        }

        writer.Commit();
        return new Outcome(response, byPatient, patients);
    }

    private List<PlannedEntry> PlanEntries(Bundle bundle)
    {
        var planned = new List<PlannedEntry>(bundle.Entry.Count);
        var fullUrls = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < bundle.Entry.Count; i++)
        {
            var entry = bundle.Entry[i];
            if (entry.Resource is null)
                throw RequestFailure.Invalid($"Entry {i} has no resource.");
            if (entry.Request?.Method is not Bundle.HTTPVerb.POST)
                throw new RequestFailure(StatusCodes.Status422UnprocessableEntity, OperationOutcome.IssueType.NotSupported, $"Entry {i}: only POST entries are processed in a transaction.");
            if (entry.Request.Url != entry.Resource.TypeName)
                throw RequestFailure.Invalid($"Entry {i}: request.url must be the resource type {entry.Resource.TypeName}.");
            if (entry.FullUrl is { } fullUrl && !fullUrls.Add(fullUrl))
                throw RequestFailure.Invalid($"Entry {i}: fullUrl appears twice.");
            var existing = entry.Request.IfNoneExist is { } condition ? FindSingle(entry.Resource.TypeName, condition, i) : null;
            planned.Add(new PlannedEntry(entry.Resource, entry.FullUrl, Guid.NewGuid().ToString(), existing));
        }

        return planned;
    }

    private void ResolveReferences(List<PlannedEntry> planned)
    {
        var targets = planned.Where(e => e.FullUrl is not null)
            .ToDictionary(e => e.FullUrl!, e => $"{e.Resource.TypeName}/{e.ExistingId ?? e.NewId}", StringComparer.Ordinal);
        foreach (var entry in planned)
        {
            foreach (var reference in ReferenceWalker.All(entry.Resource))
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
                    var type = value[..value.IndexOf('?', StringComparison.Ordinal)];
                    reference.Reference = $"{type}/{FindSingle(type, value[(type.Length + 1)..], null) ?? throw new RequestFailure(StatusCodes.Status422UnprocessableEntity, OperationOutcome.IssueType.NotFound, $"A conditional reference to {type} matches nothing stored.")}";
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
        var matches = store.FindByToken(type, parameter.Name, indexer.QueryToken(parameter, value)!);
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

    private sealed record PlannedEntry(Resource Resource, string? FullUrl, string NewId, string? ExistingId);
}
