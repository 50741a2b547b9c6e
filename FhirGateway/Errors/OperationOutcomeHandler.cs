using System.Text.Json;
using Health.Ledger.Replication;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;
using Hl7.Fhir.Serialization;
using Health.FhirGateway.Access;
using Microsoft.AspNetCore.Diagnostics;

namespace Health.FhirGateway.Errors;

/// <summary>
/// The one place where failures become FHIR OperationOutcomes: known failures get their 4xx/5xx
/// status and message; anything else is a 500 with a generic message (the details go to the log,
/// never to the client).
/// </summary>
internal sealed partial class OperationOutcomeHandler(ILogger<OperationOutcomeHandler> logger) : IExceptionHandler
{
    private static readonly JsonSerializerOptions FhirJson = new JsonSerializerOptions().ForFhir();

    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        // The client went away: there is no one to answer, and nothing went wrong here.
        if (context.RequestAborted.IsCancellationRequested)
            return true;
        var (status, type, message) = exception switch
        {
            RequestFailure f => (f.StatusCode, f.IssueType, f.Message),
            BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } =>
                (StatusCodes.Status413PayloadTooLarge, OperationOutcome.IssueType.TooCostly, "The request body is too large."),
            BadHttpRequestException b => (b.StatusCode, OperationOutcome.IssueType.Invalid, "The request is malformed."),
            LedgerUnavailableException => (StatusCodes.Status503ServiceUnavailable, OperationOutcome.IssueType.Transient, "The ledger could not commit the request in time; retry later."),
            _ when ReachesUnreachableService(exception) =>
                (StatusCodes.Status503ServiceUnavailable, OperationOutcome.IssueType.Transient, "A service this node depends on (such as the identity provider) could not be reached; retry later."),
            _ => (StatusCodes.Status500InternalServerError, OperationOutcome.IssueType.Exception, "An internal error occurred."),
        };
        if (status == StatusCodes.Status500InternalServerError)
            LogServerFailure(logger, context.TraceIdentifier, exception);
        else
            LogClientFailure(logger, context.TraceIdentifier, status, message);
        if (exception is RequestFailure { LedgerIndex: { } index })
            context.Response.Headers[AccessHeaders.LedgerIndex] = index.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await WriteAsync(context, status, type, message, cancellationToken).ConfigureAwait(false);
        return true;
    }

    // An outside service (Entra ID's metadata, for one) that could not be reached, however deeply
    // the libraries in between wrapped the network failure.
    private static bool ReachesUnreachableService(Exception exception)
    {
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            if (current is HttpRequestException or System.Net.Sockets.SocketException)
                return true;
        }

        return false;
    }

    /// <summary>Writes an OperationOutcome response.</summary>
    public static async Task WriteAsync(HttpContext context, int status, OperationOutcome.IssueType type, string message, CancellationToken token)
    {
        var outcome = new OperationOutcome
        {
            Issue =
            [
                new OperationOutcome.IssueComponent
                {
                    Severity = status >= 500 ? OperationOutcome.IssueSeverity.Fatal : OperationOutcome.IssueSeverity.Error,
                    Code = type,
                    Diagnostics = message,
                },
            ],
        };
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/fhir+json";
        await JsonSerializer.SerializeAsync(context.Response.Body, outcome, FhirJson, token).ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Request {RequestId} refused with {Status}: {Reason}")]
    private static partial void LogClientFailure(ILogger logger, string requestId, int status, string reason);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Error, Message = "Request {RequestId} failed")]
    private static partial void LogServerFailure(ILogger logger, string requestId, Exception exception);
}
