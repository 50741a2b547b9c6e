namespace Health.Consent.Policy;

/// <summary>A clinician's request to read a patient's records, as recorded on the ledger.</summary>
/// <param name="Requester">The practitioner (<c>Practitioner/{id}</c>) or other subject asking.</param>
/// <param name="Organization">The requester's organisation (a consortium member id).</param>
/// <param name="Custodian">The organisation holding the records asked for.</param>
/// <param name="PatientKey">The patient's pseudonymous key.</param>
/// <param name="Scope">The resource type asked for, or <see cref="AllTypes"/>.</param>
/// <param name="Purpose">The purpose of use (v3 ActReason code).</param>
/// <param name="BreakGlass">Whether an emergency reason was given.</param>
/// <param name="Time">The entry's leader-assigned timestamp, Unix milliseconds.</param>
public sealed record AccessRequest(string Requester, string Organization, string Custodian, string PatientKey, string Scope, string Purpose, bool BreakGlass, long Time)
{
    /// <summary>The scope of a request for every record type (<c>$everything</c>).</summary>
    public const string AllTypes = "*";
}
