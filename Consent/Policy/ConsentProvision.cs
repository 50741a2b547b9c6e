namespace Health.Consent.Policy;

/// <summary>Whether a provision permits or denies the access it matches.</summary>
public enum ProvisionType
{
    /// <summary>The matched access is denied.</summary>
    Deny,

    /// <summary>The matched access is permitted.</summary>
    Permit,
}

/// <summary>
/// One rule of a consent grant, as FHIR R4 <c>Consent.provision</c> states it: a type and the
/// criteria an access must meet for the rule to apply. Empty criteria match everything. Nested
/// provisions are exceptions to their parent; the deepest one that applies decides.
/// </summary>
/// <param name="Type">Permit or deny.</param>
/// <param name="Actors">Organisations (<c>Organization/{id}</c>) and practitioners (<c>Practitioner/{id}</c>) the rule is about.</param>
/// <param name="Purposes">Purposes of use (v3 ActReason codes such as TREAT).</param>
/// <param name="Classes">Resource types the rule covers.</param>
/// <param name="SecurityLabels">Security label codes of the sensitive records the rule covers.</param>
/// <param name="Start">Start of the rule's period, Unix milliseconds, inclusive.</param>
/// <param name="End">End of the rule's period, Unix milliseconds, inclusive.</param>
/// <param name="Provisions">Nested exceptions.</param>
public sealed record ConsentProvision(
    ProvisionType Type,
    IReadOnlyList<string> Actors,
    IReadOnlyList<string> Purposes,
    IReadOnlyList<string> Classes,
    IReadOnlyList<string> SecurityLabels,
    long? Start,
    long? End,
    IReadOnlyList<ConsentProvision> Provisions)
{
    /// <summary>Deepest nesting accepted, so hostile input cannot exhaust the stack.</summary>
    public const int MaxDepth = 8;

    /// <summary>A provision with only a type: it applies to every access.</summary>
    public static ConsentProvision Of(ProvisionType type) => new(type, [], [], [], [], null, null, []);

    /// <summary>Whether the rule's period covers <paramref name="time"/>.</summary>
    public bool IsInForceAt(long time) => (Start is not { } start || time >= start) && (End is not { } end || time <= end);

    /// <summary>The nesting depth: 1 for a provision without nested ones.</summary>
    public int Depth => 1 + (Provisions.Count == 0 ? 0 : Provisions.Max(p => p.Depth));
}
