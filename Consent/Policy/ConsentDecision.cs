namespace Health.Consent.Policy;

/// <summary>The outcome of an access request.</summary>
/// <param name="Permitted">Whether records may be released.</param>
/// <param name="Reason">Why, in words safe to show the requester and the patient (no PHI).</param>
/// <param name="ConsentId">The consent whose provision decided, or null when a default rule decided.</param>
/// <param name="BreakGlass">Whether the access was permitted as an emergency override.</param>
/// <param name="WithheldLabels">Security labels of records that must not be released even though the request is permitted.</param>
public sealed record ConsentDecision(bool Permitted, string Reason, string? ConsentId, bool BreakGlass, IReadOnlyList<string> WithheldLabels)
{
    /// <summary>A denial.</summary>
    public static ConsentDecision Deny(string reason, string? consentId = null) => new(false, reason, consentId, false, []);

    /// <summary>A permit.</summary>
    public static ConsentDecision Permit(string reason, string? consentId = null, IReadOnlyList<string>? withheldLabels = null)
        => new(true, reason, consentId, false, withheldLabels ?? []);
}
