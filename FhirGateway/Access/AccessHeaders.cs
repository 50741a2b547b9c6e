namespace Health.FhirGateway.Access;

/// <summary>The HTTP headers of authorize-by-log.</summary>
public static class AccessHeaders
{
    /// <summary>Response: the ledger index (or indices, comma-separated) recording the access.</summary>
    public const string LedgerIndex = "X-Ledger-Index";

    /// <summary>Request: the purpose of use, a v3 ActReason code (default TREAT).</summary>
    public const string PurposeOfUse = "X-Purpose-Of-Use";

    /// <summary>Request: the emergency reason that makes an ETREAT request break-glass.</summary>
    public const string BreakGlassReason = "X-Break-Glass-Reason";
}
