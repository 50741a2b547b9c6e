using System.Globalization;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Records;
using Hl7.Fhir.Model;
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

    private static void MapWrites(RouteGroupBuilder fhir)
    {
        fhir.MapPost("/{type}", CreateAsync).WithMetadata(new Microsoft.AspNetCore.Mvc.RequestSizeLimitAttribute(MaxBody));
        fhir.MapPut("/{type}/{id}", UpdateAsync).WithMetadata(new Microsoft.AspNetCore.Mvc.RequestSizeLimitAttribute(MaxBody));
        fhir.MapDelete("/{type}/{id}", Delete);
        fhir.MapGet("/{type}/{id}/_history", HistoryAsync);
    }

    private static async Task CreateAsync(HttpContext context, TransactionProcessor processor, RecordStore store, string type)
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
        var bundle = new Bundle { Type = Bundle.BundleType.Transaction };
        bundle.Entry.Add(new Bundle.EntryComponent
        {
            Resource = resource,
            Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = type, IfNoneExist = context.Request.Headers["If-None-Exist"].FirstOrDefault() },
        });
        var response = processor.Process(bundle).Response.Entry[0].Response!;
        var id = response.Location!.Split('/')[1];
        var stored = store.Read(type, id)!;
        context.Response.StatusCode = response.Status!.StartsWith("201", StringComparison.Ordinal) ? StatusCodes.Status201Created : StatusCodes.Status200OK;
        context.Response.Headers.Location = $"{Base(context)}/{type}/{id}/_history/{stored.Version.ToString(CultureInfo.InvariantCulture)}";
        await WriteStoredAsync(context, stored).ConfigureAwait(false);
    }

    private static async Task UpdateAsync(HttpContext context, RecordStore store, SearchIndexer indexer, TimeProvider time, string type, string id)
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

        var now = time.GetUtcNow();
        var version = current.Version + 1;
        resource.Meta ??= new Meta();
        resource.Meta.VersionId = version.ToString(CultureInfo.InvariantCulture);
        resource.Meta.LastUpdated = now;
        var stored = new StoredResource(type, id, version, owner, now.ToUnixTimeMilliseconds(), FhirJson.ToUtf8(resource));
        var (tokens, dates) = indexer.Index(resource);
        using (var writer = store.BeginWrite())
        {
            writer.Write(stored, tokens, dates, createKey: false);
            writer.Commit();
        }

        await WriteStoredAsync(context, stored).ConfigureAwait(false);
    }

    private static IResult Delete(HttpContext context, RecordStore store, TimeProvider time, string type, string id)
    {
        var current = AuthorizeExisting(context, store, type, id, 'd');
        if (!current.Deleted)
            store.Delete(type, id, current.Version, time.GetUtcNow().ToUnixTimeMilliseconds());
        return Results.NoContent();
    }

    private static async Task HistoryAsync(HttpContext context, RecordStore store, string type, string id)
    {
        AuthorizeExisting(context, store, type, id, 'r');
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
