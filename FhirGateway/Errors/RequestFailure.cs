using Hl7.Fhir.Model;

namespace Health.FhirGateway.Errors;

/// <summary>
/// Thrown by handlers for a request that cannot be served; <see cref="OperationOutcomeHandler"/>
/// turns it into an OperationOutcome with <see cref="StatusCode"/>. The message reaches the
/// client and the log, so it must never carry PHI.
/// </summary>
public sealed class RequestFailure(int statusCode, OperationOutcome.IssueType issueType, string message) : Exception(message)
{
    /// <summary>The HTTP status to answer with.</summary>
    public int StatusCode { get; } = statusCode;

    /// <summary>The FHIR issue type.</summary>
    public OperationOutcome.IssueType IssueType { get; } = issueType;

    /// <summary>The ledger index that records the refusal (a denied access), sent as <c>X-Ledger-Index</c>.</summary>
    public long? LedgerIndex { get; init; }

    /// <summary>400: the request is malformed.</summary>
    public static RequestFailure Invalid(string message) => new(StatusCodes.Status400BadRequest, OperationOutcome.IssueType.Invalid, message);

    /// <summary>404: nothing is there.</summary>
    public static RequestFailure NotFound(string message) => new(StatusCodes.Status404NotFound, OperationOutcome.IssueType.NotFound, message);

    /// <summary>403: the caller may not do this.</summary>
    public static RequestFailure Forbidden(string message) => new(StatusCodes.Status403Forbidden, OperationOutcome.IssueType.Forbidden, message);
}
