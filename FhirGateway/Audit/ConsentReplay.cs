using Health.Consent;
using Health.Consent.Policy;
using Health.Ledger.Entries;

namespace Health.FhirGateway.Audit;

/// <summary>
/// Replays the consent entries of a ledger in memory and decides each access request as the
/// nodes' projections did: what lets a verifier check every exported outcome without a node.
/// </summary>
public sealed class ConsentReplay
{
    private readonly Dictionary<string, (string PatientKey, ConsentProvision? Provision, long GrantedAt, bool Revoked)> grants = new(StringComparer.Ordinal);

    /// <summary>Applies one entry, in index order; returns the decision when it is an access request.</summary>
    public ConsentDecision? Apply(LedgerEntry entry)
    {
        var fields = entry.Fields;
        if (entry.Kind == ConsentEntryKinds.ConsentGranted.Name)
        {
            var consentId = fields["consentId"];
            if (!grants.TryGetValue(consentId, out var existing) || existing.PatientKey == fields["patientKey"])
                grants[consentId] = (fields["patientKey"], ProvisionJson.TryRead(fields["provision"]), entry.Index, false);
        }
        else if (entry.Kind == ConsentEntryKinds.ConsentRevoked.Name)
        {
            var consentId = fields["consentId"];
            if (grants.TryGetValue(consentId, out var existing) && existing.PatientKey == fields["patientKey"])
                grants[consentId] = existing with { Revoked = true };
        }
        else if (entry.Kind == ConsentEntryKinds.AccessRequested.Name)
        {
            var patientKey = fields["patientKey"];
            var inForce = grants.Where(g => g.Value.PatientKey == patientKey && !g.Value.Revoked && g.Value.Provision is not null)
                .Select(g => new ConsentGrant(g.Key, patientKey, g.Value.Provision!, g.Value.GrantedAt)).ToList();
            var request = new AccessRequest(fields["requester"], fields["organization"], fields["custodian"], patientKey, fields["scope"], fields["purpose"],
                !string.IsNullOrEmpty(fields.GetValueOrDefault("breakGlassReason")), entry.Timestamp);
            return ConsentPolicy.Decide(inForce, request);
        }

        return null;
    }
}
