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
    // Grants by consent id (ids are unique across patients), and each patient's consent ids, so a
    // request looks only at its own patient's grants.
    private readonly Dictionary<string, (string PatientKey, ConsentProvision? Provision, long GrantedAt, bool Revoked)> grants = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> byPatient = new(StringComparer.Ordinal);

    /// <summary>Applies one entry, in index order; returns the decision when it is an access request.</summary>
    public ConsentDecision? Apply(LedgerEntry entry)
    {
        var fields = entry.Fields;
        if (entry.Kind == ConsentEntryKinds.ConsentGranted.Name)
        {
            var (consentId, patientKey) = (fields["consentId"], fields["patientKey"]);
            if (!grants.TryGetValue(consentId, out var existing) || existing.PatientKey == patientKey)
            {
                grants[consentId] = (patientKey, ProvisionJson.TryRead(fields["provision"]), entry.Index, false);
                (byPatient.TryGetValue(patientKey, out var ids) ? ids : byPatient[patientKey] = new(StringComparer.Ordinal)).Add(consentId);
            }
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
            var inForce = new List<ConsentGrant>();
            foreach (var consentId in byPatient.GetValueOrDefault(patientKey) ?? [])
            {
                if (grants[consentId] is { Revoked: false, Provision: { } provision } grant)
                    inForce.Add(new ConsentGrant(consentId, patientKey, provision, grant.GrantedAt));
            }

            var request = new AccessRequest(fields["requester"], fields["organization"], fields["custodian"], patientKey, fields["scope"], fields["purpose"],
                !string.IsNullOrEmpty(fields.GetValueOrDefault("breakGlassReason")), entry.Timestamp);
            return ConsentPolicy.Decide(inForce, request);
        }

        return null;
    }
}
