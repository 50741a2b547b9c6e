using System.Text.Json.Serialization;
using Health.Consent;
using Health.Ledger.Entries;

namespace Health.FhirGateway.Audit;

/// <summary>
/// Which ledger entries an export turns into AuditEvents. The export's manifest carries the filter
/// so that a verifier can tell which events must be there.
/// </summary>
/// <param name="PatientKey">Only this patient's accesses and consents.</param>
/// <param name="Organization">Only accesses by, or at, this organisation.</param>
/// <param name="Since">Only entries recorded at or after this time, Unix milliseconds.</param>
public sealed record AuditFilter(
    [property: JsonPropertyName("patientKey")] string? PatientKey,
    [property: JsonPropertyName("organization")] string? Organization,
    [property: JsonPropertyName("since")] long? Since)
{
    private static readonly HashSet<string> PatientKinds = [ConsentEntryKinds.AccessRequested.Name, ConsentEntryKinds.ConsentGranted.Name, ConsentEntryKinds.ConsentRevoked.Name];

    /// <summary>Whether an entry yields an AuditEvent in this export.</summary>
    public bool Matches(LedgerEntry entry)
    {
        if (!AuditEventWriter.Audits(entry.Kind) || (Since is { } since && entry.Timestamp < since))
            return false;
        var aboutPatient = PatientKinds.Contains(entry.Kind);
        if (PatientKey is { } key && (!aboutPatient || entry.Fields["patientKey"] != key))
            return false;
        if (Organization is { } organization)
        {
            return entry.Kind == ConsentEntryKinds.AccessRequested.Name
                && (entry.Fields["organization"] == organization || entry.Fields["custodian"] == organization);
        }

        return true;
    }
}
