using System.Globalization;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Records;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;

namespace Health.FhirGateway.Audit;

/// <summary>
/// The auditor's export, in the FHIR Bulk Data pattern: <c>GET /fhir/$export?_type=AuditEvent</c>
/// (with <c>_since</c>, <c>patient</c> or <c>organization</c>) answers 202 with a status URL; the
/// status answers 202 while running and then the manifest of NDJSON files to download.
/// </summary>
public static class AuditEndpoints
{
    /// <summary>Maps the routes.</summary>
    public static IEndpointRouteBuilder MapAuditApi(this IEndpointRouteBuilder app)
    {
        var fhir = app.MapGroup("/fhir").RequireAuthorization();
        fhir.MapGet("/$export", KickOff);
        fhir.MapGet("/$export-status/{id}", Status);
        fhir.MapGet("/$export-file/{id}/{name}", Download);
        return app;
    }

    private static IResult KickOff(HttpContext context, AuditExports exports, PatientPseudonyms pseudonyms)
    {
        SmartAccess.From(context.User).RequireRole("auditor");
        var query = context.Request.Query;
        if (query["_type"].FirstOrDefault() is { } type && type != "AuditEvent")
            throw RequestFailure.Invalid("Only _type=AuditEvent is exported here.");
        long? since = null;
        if (query["_since"].FirstOrDefault() is { } sinceText)
        {
            since = DateTimeOffset.TryParse(sinceText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed)
                ? parsed.ToUnixTimeMilliseconds()
                : throw RequestFailure.Invalid("_since must be a FHIR instant.");
        }

        var patientKey = query["patient"].FirstOrDefault() is { } patient
            ? pseudonyms.KeyOfToken(patient) ?? throw RequestFailure.Invalid($"Name the patient as {PatientPseudonyms.TokenForms}.")
            : null;

        var id = exports.Start(new AuditFilter(patientKey, query["organization"].FirstOrDefault(), since), $"{context.Request.Path}{context.Request.QueryString}");
        context.Response.Headers.ContentLocation = $"{Base(context)}/$export-status/{id}";
        return Results.Accepted();
    }

    private static async Task<IResult> Status(HttpContext context, AuditExports exports, string id)
    {
        SmartAccess.From(context.User).RequireRole("auditor");
        var job = exports.Find(id) ?? throw RequestFailure.NotFound("No such export.");
        if (!job.Work.IsCompleted)
        {
            await Task.WhenAny(job.Work, Task.Delay(TimeSpan.FromSeconds(2), context.RequestAborted)).ConfigureAwait(false);
            if (!job.Work.IsCompleted)
            {
                context.Response.Headers["X-Progress"] = "running";
                context.Response.Headers.RetryAfter = "1";
                return Results.StatusCode(StatusCodes.Status202Accepted);
            }
        }

        if (job.Error is { } error)
            throw new RequestFailure(StatusCodes.Status500InternalServerError, OperationOutcome.IssueType.Exception, $"The export failed: {error}");
        return Results.Json(new
        {
            transactionTime = job.Started.ToString("o", CultureInfo.InvariantCulture),
            request = job.Request,
            requiresAccessToken = true,
            output = AuditExportFiles.All.Select(name => new { type = name == AuditExportFiles.AuditEvents ? "AuditEvent" : Path.GetFileNameWithoutExtension(name), url = $"{Base(context)}/$export-file/{id}/{name}" }),
            error = Array.Empty<object>(),
            extension = new { manifest = job.Manifest },
        });
    }

    private static IResult Download(HttpContext context, AuditExports exports, string id, string name)
    {
        SmartAccess.From(context.User).RequireRole("auditor");
        var job = exports.Find(id) ?? throw RequestFailure.NotFound("No such export.");
        if (!AuditExportFiles.All.Contains(name) || job.Manifest is null)
            throw RequestFailure.NotFound("No such file in this export.");
        return Results.File(Path.Combine(job.Folder, name), name.EndsWith(".ndjson", StringComparison.Ordinal) ? "application/fhir+ndjson" : "application/json");
    }

    private static string Base(HttpContext context) => $"{context.Request.Scheme}://{context.Request.Host}/fhir";
}
