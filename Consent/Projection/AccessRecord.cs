using Health.Consent.Policy;

namespace Health.Consent.Projection;

/// <summary>One access request as applied on the ledger, with the decision every node reached.</summary>
/// <param name="Index">Ledger index of the <c>AccessRequested</c> entry.</param>
/// <param name="Time">Leader-assigned time, Unix milliseconds.</param>
/// <param name="Requester">Who asked.</param>
/// <param name="Organization">The requester's organisation.</param>
/// <param name="Custodian">The organisation holding the records.</param>
/// <param name="PatientKey">The patient's pseudonymous key.</param>
/// <param name="Scope">The resource type asked for, or <see cref="AccessRequest.AllTypes"/>.</param>
/// <param name="Purpose">Purpose of use.</param>
/// <param name="Interaction">read, vread, search or everything.</param>
/// <param name="SealedBreakGlassReason">The sealed emergency reason, or null.</param>
/// <param name="Decision">The decision.</param>
/// <param name="Gateway">The member that asked another custodian on the requester's behalf, or null for a request at the custodian itself.</param>
public sealed record AccessRecord(long Index, long Time, string Requester, string Organization, string Custodian, string PatientKey, string Scope,
    string Purpose, string Interaction, string? SealedBreakGlassReason, ConsentDecision Decision, string? Gateway = null);
