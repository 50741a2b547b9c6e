namespace Health.FhirGateway.Audit;

/// <summary>The files of an audit export folder.</summary>
public static class AuditExportFiles
{
    /// <summary>What the export covers: format, tree size, filter, counts.</summary>
    public const string Manifest = "manifest.json";

    /// <summary>Every ledger entry from 1 to the covering checkpoint's tree size: index and canonical bytes.</summary>
    public const string Entries = "entries.ndjson";

    /// <summary>The FHIR AuditEvents of the entries the filter selects, in index order.</summary>
    public const string AuditEvents = "AuditEvent.ndjson";

    /// <summary>One inclusion proof per AuditEvent, against the covering checkpoint.</summary>
    public const string Proofs = "proofs.ndjson";

    /// <summary>The signed checkpoints up to the covering one.</summary>
    public const string Checkpoints = "checkpoints.ndjson";

    /// <summary>Consistency proofs between successive checkpoints.</summary>
    public const string Consistency = "consistency.ndjson";

    /// <summary>The certificates whose keys signed checkpoints.</summary>
    public const string Signers = "signers.ndjson";

    /// <summary>The format name in the manifest.</summary>
    public const string Format = "health-ledger-audit-export/1";

    /// <summary>Every file, manifest last (its presence says the export is complete).</summary>
    public static readonly string[] All = [Entries, AuditEvents, Proofs, Checkpoints, Consistency, Signers, Manifest];
}
