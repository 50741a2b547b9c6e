namespace Health.FhirGateway.Records;

/// <summary>The resource existed but is deleted or erased (410).</summary>
public sealed class ResourceGoneException(string message) : Exception(message);
