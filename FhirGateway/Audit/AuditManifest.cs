using System.Text.Json;

namespace Health.FhirGateway.Audit;

/// <summary>What an audit export covers.</summary>
/// <param name="Format">The export format, <see cref="AuditExportFiles.Format"/>.</param>
/// <param name="Node">The node that wrote it.</param>
/// <param name="TreeSize">The covering checkpoint's tree size: entries 1 to this are in the export.</param>
/// <param name="Filter">Which entries have AuditEvents.</param>
/// <param name="Events">How many AuditEvents.</param>
/// <param name="Checkpoints">How many checkpoints.</param>
public sealed record AuditManifest(string Format, string Node, long TreeSize, AuditFilter Filter, long Events, int Checkpoints)
{
    /// <summary>The JSON conventions of the export's files.</summary>
    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web);
}
