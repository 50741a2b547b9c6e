using Health.Consent.Policy;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;

namespace Health.FhirGateway.Access;

/// <summary>Who asks and why, for the <c>AccessRequested</c> entries of one HTTP request.</summary>
/// <param name="Requester">The practitioner (<c>Practitioner/{id}</c>), else the token's subject.</param>
/// <param name="Organization">The requester's organisation (a consortium member id).</param>
/// <param name="Purpose">The purpose of use.</param>
/// <param name="BreakGlassReason">The emergency reason, or null.</param>
public sealed record AccessContext(string Requester, string Organization, string Purpose, string? BreakGlassReason)
{
    /// <summary>Reads the context from the token and the request headers (headers win).</summary>
    /// <exception cref="RequestFailure">403 when the token names no organisation; 400 for an unknown purpose or an over-long reason.</exception>
    public static AccessContext From(HttpContext context, SmartAccess access)
    {
        var organization = access.Organization ?? throw RequestFailure.Forbidden("The token names no organisation; records are released only to a consortium member's staff.");
        var purpose = Header(context, AccessHeaders.PurposeOfUse) ?? context.User.FindFirst("purpose_of_use")?.Value ?? PurposeOfUse.Treatment;
        if (!PurposeOfUse.Known.ContainsKey(purpose))
            throw RequestFailure.Invalid($"Unknown purpose of use; use one of {string.Join(", ", PurposeOfUse.Known.Keys)}.");
        var reason = Header(context, AccessHeaders.BreakGlassReason) ?? context.User.FindFirst("break_glass_reason")?.Value;
        if (reason is { Length: > BreakGlassReasons.MaxLength })
            throw RequestFailure.Invalid($"A break-glass reason may have at most {BreakGlassReasons.MaxLength} characters.");
        if (reason is not null && purpose != PurposeOfUse.EmergencyTreatment)
            throw RequestFailure.Invalid($"A break-glass reason goes with purpose {PurposeOfUse.EmergencyTreatment}.");
        var requester = access.Practitioner is { } practitioner ? $"Practitioner/{practitioner}" : access.Subject;
        return new AccessContext(requester, organization, purpose, string.IsNullOrWhiteSpace(reason) ? null : reason.Trim());
    }

    private static string? Header(HttpContext context, string name)
        => context.Request.Headers[name].FirstOrDefault() is { Length: > 0 } value ? value : null;
}
