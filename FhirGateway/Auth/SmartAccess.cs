using System.Security.Claims;
using Health.FhirGateway.Errors;
using Hl7.Fhir.Model;

namespace Health.FhirGateway.Auth;

/// <summary>
/// Who the caller is, from a validated token, and what SMART on FHIR scopes let them do.
/// Scopes are v2 (<c>patient/Observation.rs</c>, <c>user/*.rs</c>, <c>system/*.cruds</c>); the v1
/// forms <c>.read</c> and <c>.write</c> are read as <c>rs</c> and <c>cud</c>.
/// </summary>
public sealed record SmartAccess(string Subject, IReadOnlySet<string> Roles, IReadOnlyList<string> Scopes, string? Organization, string? Practitioner, string? Patient)
{
    /// <summary>Reads the caller from the authenticated user.</summary>
    public static SmartAccess From(ClaimsPrincipal user) => new(
        user.FindFirst("sub")?.Value ?? user.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? "unknown",
        user.FindAll("roles").Concat(user.FindAll(ClaimTypes.Role)).Select(c => c.Value).ToHashSet(StringComparer.Ordinal),
        user.FindAll("scope").Concat(user.FindAll("scp")).SelectMany(c => c.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList(),
        user.FindFirst("org")?.Value,
        user.FindFirst("practitioner")?.Value,
        user.FindFirst("patient")?.Value);

    /// <summary>Throws 403 unless the caller has <paramref name="role"/>.</summary>
    public void RequireRole(string role)
    {
        if (!Roles.Contains(role))
            throw RequestFailure.Forbidden($"This needs the {role} role.");
    }

    /// <summary>
    /// Throws 403 unless a scope allows <paramref name="permission"/> (one of c, r, u, d, s) on
    /// <paramref name="resourceType"/> for the caller's roles: <c>patient/</c> scopes for patients,
    /// <c>user/</c> for clinicians, <c>system/</c> for operators.
    /// </summary>
    public void RequireScope(string resourceType, char permission)
    {
        foreach (var scope in Scopes)
        {
            var slash = scope.IndexOf('/', StringComparison.Ordinal);
            var dot = scope.LastIndexOf('.');
            if (slash <= 0 || dot <= slash)
                continue;
            var context = scope[..slash];
            var type = scope[(slash + 1)..dot];
            var permissions = scope[(dot + 1)..] switch
            {
                "read" => "rs",
                "write" => "cud",
                "*" => "cruds",
                var p => p,
            };
            var contextAllowed = context switch
            {
                "patient" => Roles.Contains("patient") && Patient is not null,
                "user" => Roles.Contains("clinician"),
                "system" => Roles.Contains("operator"),
                _ => false,
            };
            if (contextAllowed && (type == "*" || type == resourceType) && permissions.Contains(permission, StringComparison.Ordinal))
                return;
        }

        throw RequestFailure.Forbidden($"No scope of this token allows '{permission}' on {resourceType}.");
    }

    /// <summary>The patient whose compartment limits this caller, or null when the caller is not limited to one.</summary>
    public string? CompartmentPatient => Roles.Contains("clinician") || Roles.Contains("operator") ? null : Patient;

    /// <summary>Throws 403 when a patient-limited caller reaches outside their compartment.</summary>
    public void RequireCompartment(string owner)
    {
        if (CompartmentPatient is { } patient && owner != patient)
            throw new RequestFailure(StatusCodes.Status403Forbidden, OperationOutcome.IssueType.Forbidden, "A patient may read only their own records.");
    }
}
