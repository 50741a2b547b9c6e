namespace Health.Consent.Policy;

/// <summary>A patient's consent as the ledger holds it: the consent's id and its root provision.</summary>
/// <param name="ConsentId">The id of the FHIR Consent it came from.</param>
/// <param name="PatientKey">The patient's pseudonymous key.</param>
/// <param name="Provision">The root provision.</param>
/// <param name="GrantedAt">Ledger index of the <c>ConsentGranted</c> entry.</param>
public sealed record ConsentGrant(string ConsentId, string PatientKey, ConsentProvision Provision, long GrantedAt);
