namespace Health.FhirGateway.Records;

/// <summary>One version of a resource as the store keeps it.</summary>
/// <param name="Type">Resource type.</param>
/// <param name="Id">Server-assigned id.</param>
/// <param name="Version">Version number, from 1.</param>
/// <param name="Owner">The patient whose compartment it is in, or <see cref="RecordStore.NodeOwner"/>.</param>
/// <param name="LastUpdated">Unix milliseconds.</param>
/// <param name="Json">The FHIR JSON (plaintext in memory only).</param>
public sealed record StoredResource(string Type, string Id, int Version, string Owner, long LastUpdated, byte[] Json);
