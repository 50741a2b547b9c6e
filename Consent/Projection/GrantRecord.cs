using Health.Consent.Policy;

namespace Health.Consent.Projection;

/// <summary>A consent grant as the ledger knows it, active or revoked.</summary>
/// <param name="ConsentId">The consent's id.</param>
/// <param name="Provision">Its provisions, or null when they were not well-formed (such a grant never applies).</param>
/// <param name="GrantedIndex">Ledger index of the latest <c>ConsentGranted</c> entry.</param>
/// <param name="GrantedTime">Its time, Unix milliseconds.</param>
/// <param name="RevokedIndex">Ledger index of the revoke, or null while in force.</param>
/// <param name="RevokedTime">Its time.</param>
public sealed record GrantRecord(string ConsentId, ConsentProvision? Provision, long GrantedIndex, long GrantedTime, long? RevokedIndex, long? RevokedTime);
