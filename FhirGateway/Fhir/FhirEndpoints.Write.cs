using System.Globalization;
using Health.FhirGateway.Access;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Records;
using Hl7.Fhir.Model;
using FhirConsent = Hl7.Fhir.Model.Consent;
using Task = System.Threading.Tasks.Task;

namespace Health.FhirGateway.Fhir;

public static partial class FhirEndpoints
{
    // The checks every interaction on an existing resource makes: known type, a scope allowing the
    // permission, the resource exists, and a patient caller stays in their compartment.
    private static (int Version, string Owner, bool Deleted) AuthorizeExisting(HttpContext context, RecordStore store, string type, string id, char permission)
    {
        RequireKnownType(type);
        var access = SmartAccess.From(context.User);
        access.RequireScope(type, permission);
        var current = store.Current(type, id) ?? throw RequestFailure.NotFound($"{type}/{id} is not known.");
        access.RequireCompartment(current.Owner);
        return current;
    }

    // The same for reading: a caller outside the patient's compartment is let through only by a
    // permit the ledger recorded, and not to a record whose security label the consent withholds.
    private static async Task<(int Version, string Owner, bool Deleted)> AuthorizeExistingAsync(HttpContext context, RecordStore store, AccessGate gate, string type, string id, char permission, string interaction)
    {
        var current = AuthorizeExisting(context, store, type, id, permission);
        var access = SmartAccess.From(context.User);
        if (current.Owner == RecordStore.NodeOwner || !AccessGate.Applies(access))
            return current;
        var decision = await gate.AuthorizeAsync(context, access, current.Owner, type, interaction).ConfigureAwait(false);
        if (gate.IsWithheld(type, id, decision))
            throw RequestFailure.Forbidden("The patient's consent withholds records with this security label.");
        return current;
    }

    private static void MapWrites(RouteGroupBuilder fhir)
    {
        fhir.MapPost("/{type}", CreateAsync).WithMetadata(new Microsoft.AspNetCore.Mvc.RequestSizeLimitAttribute(MaxBody));
        fhir.MapPut("/{type}/{id}", UpdateAsync).WithMetadata(new Microsoft.AspNetCore.Mvc.RequestSizeLimitAttribute(MaxBody));
        fhir.MapDelete("/{type}/{id}", DeleteAsync);
        fhir.MapGet("/{type}/{id}/_history", HistoryAsync);
    }

    private static async Task CreateAsync(HttpContext context, TransactionProcessor processor, RecordStore store, ConsentRecorder consents, string type)
    {
        RequireKnownType(type);
        var access = SmartAccess.From(context.User);
        access.RequireScope(type, 'c');
        RequireFhirJson(context);
        var resource = await FhirJson.ReadAsync(context.Request.Body, context.RequestAborted).ConfigureAwait(false);
        if (resource.TypeName != type)
            throw RequestFailure.Invalid($"The body is a {resource.TypeName}, not a {type}.");
        if (access.CompartmentPatient is { } patient && TransactionProcessor.OwnerOf(resource) != patient)
            throw RequestFailure.Forbidden("A patient may create records only in their own compartment.");
        if (resource is FhirConsent consent)
            ConsentRecorder.Validate(consent);
        var bundle = new Bundle { Type = Bundle.BundleType.Transaction };
        bundle.Entry.Add(new Bundle.EntryComponent
        {
            Resource = resource,
            Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = type, IfNoneExist = context.Request.Headers["If-None-Exist"].FirstOrDefault() },
        });
        var response = processor.Process(bundle).Response.Entry[0].Response!;
        var id = response.Location!.Split('/')[1];
        var stored = store.Read(type, id)!;
        var created = response.Status!.StartsWith("201", StringComparison.Ordinal);
        if (created && resource is FhirConsent granted)
            SetLedgerIndex(context, await consents.RecordAsync(granted, stored.Owner, context.RequestAborted).ConfigureAwait(false));
        context.Response.StatusCode = created ? StatusCodes.Status201Created : StatusCodes.Status200OK;
        context.Response.Headers.Location = $"{Base(context)}/{type}/{id}/_history/{stored.Version.ToString(CultureInfo.InvariantCulture)}";
        await WriteStoredAsync(context, stored).ConfigureAwait(false);
    }

    private static async Task UpdateAsync(HttpContext context, RecordStore store, SearchIndexer indexer, PatientPseudonyms pseudonyms, ConsentRecorder consents, TimeProvider time, string type, string id)
    {
        RequireKnownType(type);
        var access = SmartAccess.From(context.User);
        access.RequireScope(type, 'u');
        RequireFhirJson(context);
        var resource = await FhirJson.ReadAsync(context.Request.Body, context.RequestAborted).ConfigureAwait(false);
        if (resource.TypeName != type || resource.Id != id)
            throw RequestFailure.Invalid($"The body must be the {type} with id {id}.");
        var current = store.Current(type, id) ?? throw RequestFailure.NotFound($"{type}/{id} is not known; this server assigns ids, so create it with POST.");
        access.RequireCompartment(current.Owner);
        if (context.Request.Headers.IfMatch.FirstOrDefault() is { } ifMatch && ifMatch != $"W/\"{current.Version.ToString(CultureInfo.InvariantCulture)}\"")
            throw new RequestFailure(StatusCodes.Status412PreconditionFailed, OperationOutcome.IssueType.Conflict, $"{type}/{id} is at version {current.Version}, not the one If-Match names.");
        var owner = TransactionProcessor.OwnerOf(resource);
        if (owner != current.Owner)
            throw new RequestFailure(StatusCodes.Status422UnprocessableEntity, OperationOutcome.IssueType.BusinessRule, "An update may not move a resource to another patient.");
        var consent = resource as FhirConsent;
        if (consent is not null)
        {
            ConsentRecorder.Validate(consent);
            if (!ConsentMapping.IsInForce(consent))
                SetLedgerIndex(context, await consents.RecordAsync(consent, owner, context.RequestAborted).ConfigureAwait(false));
        }

        var now = time.GetUtcNow();
        var version = current.Version + 1;
        resource.Meta ??= new Meta();
        resource.Meta.VersionId = version.ToString(CultureInfo.InvariantCulture);
        resource.Meta.LastUpdated = now;
        var stored = new StoredResource(type, id, version, owner, now.ToUnixTimeMilliseconds(), FhirJson.ToUtf8(resource));
        var (tokens, dates) = indexer.Index(resource);
        using (var writer = store.BeginWrite())
        {
            writer.Write(stored, tokens, dates, createKey: false, resource is Patient patient ? pseudonyms.KeyOf(patient) : null);
            writer.Commit();
        }

        if (consent is not null && ConsentMapping.IsInForce(consent))
            SetLedgerIndex(context, await consents.RecordAsync(consent, owner, context.RequestAborted).ConfigureAwait(false));
        await WriteStoredAsync(context, stored).ConfigureAwait(false);
    }

    private static async Task<IResult> DeleteAsync(HttpContext context, RecordStore store, ConsentRecorder consents, TimeProvider time, string type, string id)
    {
        var current = AuthorizeExisting(context, store, type, id, 'd');
        if (current.Deleted)
            return Results.NoContent();
        if (type == "Consent")
            SetLedgerIndex(context, await consents.RevokeAsync(id, current.Owner, context.RequestAborted).ConfigureAwait(false));
        store.Delete(type, id, current.Version, time.GetUtcNow().ToUnixTimeMilliseconds());
        return Results.NoContent();
    }

    private static void SetLedgerIndex(HttpContext context, long? index)
    {
        if (index is { } value)
            context.Response.Headers[AccessHeaders.LedgerIndex] = value.ToString(CultureInfo.InvariantCulture);
    }

    private static async Task HistoryAsync(HttpContext context, RecordStore store, AccessGate gate, string type, string id)
    {
        await AuthorizeExistingAsync(context, store, gate, type, id, 'r', "history").ConfigureAwait(false);
        IReadOnlyList<StoredResource?> versions;
        try
        {
            versions = store.History(type, id);
        }
        catch (ResourceGoneException e)
        {
            throw new RequestFailure(StatusCodes.Status410Gone, OperationOutcome.IssueType.Deleted, e.Message);
        }

        var bundle = new Bundle { Type = Bundle.BundleType.History, Total = versions.Count };
        foreach (var version in versions)
        {
            bundle.Entry.Add(version is null
                ? new Bundle.EntryComponent { Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.DELETE, Url = $"{type}/{id}" }, Response = new Bundle.ResponseComponent { Status = "410 Gone" } }
                : new Bundle.EntryComponent { FullUrl = $"{Base(context)}/{type}/{id}", Resource = FhirJson.Parse(version.Json), Response = new Bundle.ResponseComponent { Status = "200 OK", Etag = $"W/\"{version.Version.ToString(CultureInfo.InvariantCulture)}\"" } });
        }

        await WriteAsync(context, bundle).ConfigureAwait(false);
    }
}
