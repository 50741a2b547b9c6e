using Health.Ledger.Entries;

namespace Health.Consent;

/// <summary>
/// The entry kinds of consent and record location. Patients appear only as a pseudonymous
/// patient key; no field carries PHI.
/// </summary>
public static class ConsentEntryKinds
{
    /// <summary>A custodian holds records about a patient.</summary>
    public static readonly EntryKind RecordsLocated = EntryKind.Create(
        "RecordsLocated", ["patientKey", "custodian", "contentHash"]);

    /// <summary>A patient granted access.</summary>
    public static readonly EntryKind ConsentGranted = EntryKind.Create(
        "ConsentGranted", ["patientKey", "consentId", "provision"], ["actor", "purpose", "classes", "securityLabels", "periodStart", "periodEnd"]);

    /// <summary>A patient revoked a grant.</summary>
    public static readonly EntryKind ConsentRevoked = EntryKind.Create("ConsentRevoked", ["patientKey", "consentId"]);

    /// <summary>A clinician asked to read a patient's records.</summary>
    public static readonly EntryKind AccessRequested = EntryKind.Create(
        "AccessRequested", ["requester", "organization", "patientKey", "scope", "purpose"], ["breakGlassReason", "interaction"]);

    /// <summary>Registers every kind above.</summary>
    public static void RegisterIn(EntryKindRegistry registry)
    {
        foreach (var kind in new[] { RecordsLocated, ConsentGranted, ConsentRevoked, AccessRequested })
            registry.Register(kind);
    }
}
