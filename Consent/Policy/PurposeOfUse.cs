namespace Health.Consent.Policy;

/// <summary>The purposes of use accepted, from HL7 v3 ActReason.</summary>
public static class PurposeOfUse
{
    /// <summary>The code system of the purposes.</summary>
    public const string System = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

    /// <summary>Treatment.</summary>
    public const string Treatment = "TREAT";

    /// <summary>Emergency treatment; with a reason, this is break-glass access.</summary>
    public const string EmergencyTreatment = "ETREAT";

    /// <summary>Every accepted code with its display text.</summary>
    public static readonly IReadOnlyDictionary<string, string> Known = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [Treatment] = "treatment",
        [EmergencyTreatment] = "emergency treatment",
        ["HPAYMT"] = "payment",
        ["HOPERAT"] = "healthcare operations",
        ["HRESCH"] = "research",
        ["PUBHLTH"] = "public health",
        ["PATRQT"] = "patient request",
        ["CAREMGT"] = "care management",
    };
}
