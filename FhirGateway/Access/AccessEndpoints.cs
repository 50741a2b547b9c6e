using Health.Consent.Projection;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;

namespace Health.FhirGateway.Access;

/// <summary>
/// The decision this node's projection holds for an access request, for auditors and operators:
/// every node computes it when applying the entry, so every node must answer the same.
/// </summary>
public static class AccessEndpoints
{
    /// <summary>Maps <c>GET /ledger/access/{index}</c>.</summary>
    public static IEndpointRouteBuilder MapAccessApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/ledger/access/{index:long}", Decision).RequireAuthorization();
        return app;
    }

    private static IResult Decision(HttpContext context, ConsentLedger consents, long index)
    {
        var access = SmartAccess.From(context.User);
        if (!access.Roles.Contains("auditor") && !access.Roles.Contains("operator"))
            throw RequestFailure.Forbidden("This needs the auditor or operator role.");
        var record = consents.Access(index) ?? throw RequestFailure.NotFound($"Ledger index {index} is not an access request applied here.");
        return Results.Json(new
        {
            record.Index,
            record.Time,
            record.Requester,
            record.Organization,
            record.Custodian,
            record.PatientKey,
            record.Scope,
            record.Purpose,
            record.Interaction,
            record.Decision.Permitted,
            record.Decision.Reason,
            record.Decision.ConsentId,
            record.Decision.BreakGlass,
            record.Decision.WithheldLabels,
        });
    }
}
