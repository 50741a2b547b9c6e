namespace Health.Ledger.Governance;

/// <summary>A governance proposal.</summary>
/// <param name="Index">Ledger index of the proposal.</param>
/// <param name="Action">admit or remove.</param>
/// <param name="NodeId">The node concerned.</param>
/// <param name="Organization">Its organisation (admissions).</param>
/// <param name="CertificateSha256">The pinned certificate (admissions).</param>
/// <param name="Voters">Members whose operators approved.</param>
/// <param name="EffectiveIndex">Ledger index of the vote that made it take effect, or null while open.</param>
public sealed record Proposal(long Index, string Action, string NodeId, string? Organization, string? CertificateSha256, IReadOnlyList<string> Voters, long? EffectiveIndex);
