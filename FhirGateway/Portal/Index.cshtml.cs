using System.Globalization;
using Health.Consent.Policy;
using Health.Consent.Projection;
using Health.FhirGateway.Access;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Records;
using Health.Ledger.Replication;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using FhirConsent = Hl7.Fhir.Model.Consent;

namespace Health.FhirGateway.Portal;

/// <summary>
/// The patient's page: where their records are, the grants they made, a form to grant and
/// buttons to revoke, and every access request about them as the ledger recorded it.
/// </summary>
[Authorize(AuthenticationSchemes = AuthenticationSetup.PortalScheme)]
public sealed class IndexModel(RecordStore store, ConsentLedger consents, ConsentRecorder recorder, LedgerNode ledger, BreakGlassReasons reasons) : PageModel
{
    /// <summary>Record types a grant may be limited to.</summary>
    public static IReadOnlyList<string> RecordTypes { get; } = ["Patient", .. SearchParameters.ClinicalTypes];

    /// <summary>Whether this node holds the signed-in patient.</summary>
    public bool Known { get; private set; }

    /// <summary>Organisations holding records about the patient.</summary>
    public IReadOnlyList<string> Custodians { get; private set; } = [];

    /// <summary>The patient's grants, newest first.</summary>
    public IReadOnlyList<GrantRecord> Grants { get; private set; } = [];

    /// <summary>Access requests about the patient, newest first.</summary>
    public IReadOnlyList<AccessRecord> Accesses { get; private set; } = [];

    /// <summary>The consortium's members, offered as organisations to grant.</summary>
    public IReadOnlyList<string> Members { get; private set; } = [];

    /// <summary>What the last action did, from the redirect.</summary>
    [BindProperty(SupportsGet = true, Name = "done")]
    public string? Done { get; set; }

    /// <summary>What went wrong with the last form, or null.</summary>
    public string? Error { get; private set; }

    private string PatientId => User.FindFirst("patient")?.Value ?? throw new InvalidOperationException("The portal cookie names no patient.");

    /// <summary>Shows the page.</summary>
    public void OnGet() => Load();

    /// <summary>Grants an organisation (or one of its clinicians) access.</summary>
    public async Task<IActionResult> OnPostGrantAsync(string? organization, string? practitioner, string[]? purposes, string[]? types, string? until)
    {
        if (string.IsNullOrWhiteSpace(organization) && string.IsNullOrWhiteSpace(practitioner))
            return Failed("Name the organisation or the clinician you want to allow.");
        if (purposes is not { Length: > 0 })
            return Failed("Choose at least one purpose.");
        var actor = string.IsNullOrWhiteSpace(practitioner) ? $"Organization/{organization!.Trim()}" : $"Practitioner/{practitioner.Trim()}";
        var consent = new FhirConsent
        {
            Status = FhirConsent.ConsentState.Active,
            Scope = new CodeableConcept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
            Category = [new CodeableConcept("http://loinc.org", "59284-0")],
            Patient = new ResourceReference($"Patient/{PatientId}"),
            DateTimeElement = new FhirDateTime(DateTimeOffset.UtcNow),
            Provision = new FhirConsent.provisionComponent
            {
                Type = FhirConsent.ConsentProvisionType.Permit,
                Actor = [new FhirConsent.provisionActorComponent { Role = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP"), Reference = new ResourceReference(actor) }],
                Purpose = purposes.Select(p => new Coding(PurposeOfUse.System, p)).ToList(),
                Class = (types ?? []).Select(t => new Coding("http://hl7.org/fhir/resource-types", t)).ToList(),
            },
        };
        if (!string.IsNullOrWhiteSpace(until))
        {
            if (!DateOnly.TryParseExact(until, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var end))
                return Failed("The end date is not a date.");
            consent.Provision.Period = new Period { End = end.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) };
        }

        try
        {
            await recorder.GrantAsync(consent, PatientId, HttpContext.RequestAborted).ConfigureAwait(false);
        }
        catch (RequestFailure failure)
        {
            return Failed(failure.Message);
        }

        return Redirect("/portal?done=granted");
    }

    /// <summary>Revokes one of the patient's grants.</summary>
    public async Task<IActionResult> OnPostRevokeAsync(string? consentId)
    {
        var patientKey = store.PatientKeyOf(PatientId);
        if (patientKey is null || consentId is null || consents.GrantsOf(patientKey).All(g => g.ConsentId != consentId || g.RevokedIndex is not null))
            return Failed("That grant is not one of your grants in force.");
        await recorder.RevokeStoredAsync(consentId, PatientId, HttpContext.RequestAborted).ConfigureAwait(false);
        return Redirect("/portal?done=revoked");
    }

    /// <summary>Signs the patient out.</summary>
    public async Task<IActionResult> OnPostSignOutAsync()
    {
        await HttpContext.SignOutAsync(AuthenticationSetup.PortalScheme).ConfigureAwait(false);
        return Redirect("/portal/sign-in");
    }

    /// <summary>The break-glass reason of an access, opened for the patient.</summary>
    public string? ReasonOf(AccessRecord access)
        => access.SealedBreakGlassReason is { } sealedReason && store.PatientKeyOf(PatientId) is { } key ? reasons.Open(sealedReason, key) : null;

    /// <summary>A ledger time in UTC, for display.</summary>
    public static string Time(long unixMilliseconds) => DateTimeOffset.FromUnixTimeMilliseconds(unixMilliseconds).ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    private PageResult Failed(string message)
    {
        Error = message;
        Response.StatusCode = StatusCodes.Status400BadRequest;
        Load();
        return Page();
    }

    private void Load()
    {
        Members = ledger.Members.Select(m => m.NodeId).ToList();
        if (store.PatientKeyOf(PatientId) is not { } patientKey)
            return;
        Known = true;
        Custodians = consents.CustodiansOf(patientKey);
        Grants = consents.GrantsOf(patientKey);
        Accesses = consents.AccessesOf(patientKey);
    }
}
