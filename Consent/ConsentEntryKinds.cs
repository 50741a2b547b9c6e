using Health.Ledger.Entries;

namespace Health.Consent;

/// <summary>
/// The entry kinds of consent and record location. Patients appear only as a pseudonymous
/// patient key; no field carries PHI. Only the gateway writes them, never a raw ledger client.
/// </summary>
public static class ConsentEntryKinds
{
    /// <summary>A custodian holds records about a patient.</summary>
    public static readonly EntryKind RecordsLocated = EntryKind.Create(
        "RecordsLocated", ["patientKey", "custodian", "contentHash"], clientAppendable: false);

    /// <summary>A patient granted access (or changed a grant): the consent's provisions as JSON.</summary>
    public static readonly EntryKind ConsentGranted = EntryKind.Create(
        "ConsentGranted", ["patientKey", "consentId", "provision"], clientAppendable: false);

    /// <summary>A patient revoked a grant.</summary>
    public static readonly EntryKind ConsentRevoked = EntryKind.Create("ConsentRevoked", ["patientKey", "consentId"], clientAppendable: false);

    /// <summary>
    /// A clinician asked to read a patient's records. The decision is not part of the entry: every
    /// node computes it when applying the entry. A break-glass reason is sealed, never plain text.
    /// <c>gateway</c> names the member that asks another custodian on the requester's behalf: only
    /// that member may use the permit there.
    /// </summary>
    public static readonly EntryKind AccessRequested = EntryKind.Create(
        "AccessRequested", ["requester", "organization", "custodian", "patientKey", "scope", "purpose", "interaction"], ["breakGlassReason", "gateway"], clientAppendable: false);

    /// <summary>Registers every kind above.</summary>
    public static void RegisterIn(EntryKindRegistry registry)
    {
        foreach (var kind in new[] { RecordsLocated, ConsentGranted, ConsentRevoked, AccessRequested })
            registry.Register(kind);
    }
}
