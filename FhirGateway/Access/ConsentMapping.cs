using Health.Consent.Policy;
using Health.FhirGateway.Errors;
using Hl7.Fhir.Model;
using FhirConsent = Hl7.Fhir.Model.Consent;

namespace Health.FhirGateway.Access;

/// <summary>
/// Reads a FHIR R4 Consent as a grant: scope patient-privacy, provision type, actors
/// (organisations and practitioners), purposes (v3 ActReason), classes (resource types), security
/// labels, period and nested provisions. Anything it cannot enforce is refused rather than ignored.
/// </summary>
public static class ConsentMapping
{
    private const string ScopeSystem = "http://terminology.hl7.org/CodeSystem/consentscope";

    /// <summary>Whether the consent's status puts it in force.</summary>
    public static bool IsInForce(FhirConsent consent) => consent.Status == FhirConsent.ConsentState.Active;

    /// <summary>The consent's root provision.</summary>
    /// <exception cref="RequestFailure">422 naming what cannot be enforced.</exception>
    public static ConsentProvision ToProvision(FhirConsent consent)
    {
        if (consent.Status is null)
            throw Unprocessable("Consent.status is required.");
        if (consent.Scope?.Coding.Any(c => c.Code == "patient-privacy" && c.System is null or ScopeSystem) != true)
            throw Unprocessable("Only Consent.scope patient-privacy is supported.");
        if (consent.Patient?.Reference is not { } patient || !patient.StartsWith("Patient/", StringComparison.Ordinal))
            throw Unprocessable("Consent.patient must reference the Patient.");
        if (consent.Policy.Count > 0 || consent.PolicyRule is not null && consent.Provision is null)
            throw Unprocessable("Consent.policy is not enforced here; state the rules as provisions.");
        return Provision(consent.Provision ?? throw Unprocessable("Consent.provision is required."), "Consent.provision", 1);
    }

    private static ConsentProvision Provision(FhirConsent.provisionComponent provision, string path, int depth)
    {
        if (depth > ConsentProvision.MaxDepth)
            throw Unprocessable($"Provisions may be nested at most {ConsentProvision.MaxDepth} deep.");
        if (provision.Data.Count > 0 || provision.Code.Count > 0 || provision.Action.Count > 0 || provision.DataPeriod is not null)
            throw Unprocessable($"{path}: data, code, action and dataPeriod are not supported.");
        var type = provision.Type switch
        {
            FhirConsent.ConsentProvisionType.Permit => ProvisionType.Permit,
            FhirConsent.ConsentProvisionType.Deny => ProvisionType.Deny,
            _ => throw Unprocessable($"{path}.type must be permit or deny."),
        };
        var actors = provision.Actor.Select(a => a.Reference?.Reference switch
        {
            { } r when (r.StartsWith("Organization/", StringComparison.Ordinal) || r.StartsWith("Practitioner/", StringComparison.Ordinal)) && r.IndexOf('/') == r.LastIndexOf('/') => r,
            _ => throw Unprocessable($"{path}.actor must reference an Organization (a consortium member id) or a Practitioner."),
        }).ToList();
        var purposes = provision.Purpose.Select(p => p.Code is { } code && PurposeOfUse.Known.ContainsKey(code) && p.System is null or PurposeOfUse.System
            ? code
            : throw Unprocessable($"{path}.purpose must be one of {string.Join(", ", PurposeOfUse.Known.Keys)} ({PurposeOfUse.System}).")).ToList();
        var classes = provision.Class.Select(c => c.Code is { } code && Fhir.Capabilities.StoredTypes.Contains(code)
            ? code
            : throw Unprocessable($"{path}.class must name resource types.")).ToList();
        var labels = provision.SecurityLabel.Select(l => l.Code ?? throw Unprocessable($"{path}.securityLabel needs a code.")).ToList();
        var nested = provision.Provision.Select((p, i) => Provision(p, $"{path}.provision[{i}]", depth + 1)).ToList();
        return new ConsentProvision(type, actors, purposes, classes, labels, Bound(provision.Period?.StartElement, low: true), Bound(provision.Period?.EndElement, low: false), nested);
    }

    // A period bound covers its whole precision: an end of 2027-01-31 lasts until that day ends.
    private static long? Bound(FhirDateTime? value, bool low)
    {
        if (value is null)
            return null;
        var range = Records.DateRanges.Of(value) ?? throw Unprocessable("A provision period has a date that cannot be read.");
        return low ? range.Low : range.High;
    }

    private static RequestFailure Unprocessable(string message) => new(StatusCodes.Status422UnprocessableEntity, OperationOutcome.IssueType.NotSupported, message);
}
