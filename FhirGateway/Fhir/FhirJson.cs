using System.Text.Json;
using Health.FhirGateway.Errors;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace Health.FhirGateway.Fhir;

/// <summary>FHIR R4 JSON through Firely's System.Text.Json converters, with failures turned into safe 400s.</summary>
public static class FhirJson
{
    /// <summary>The serializer options for FHIR R4 resources.</summary>
    public static JsonSerializerOptions Options { get; } = new JsonSerializerOptions().ForFhir();

    /// <summary>Reads a resource from a request body.</summary>
    /// <exception cref="RequestFailure">400 when the body is not JSON or not a valid R4 resource; the message never echoes the content.</exception>
    public static async Task<Resource> ReadAsync(Stream body, CancellationToken token)
    {
        try
        {
            return await JsonSerializer.DeserializeAsync<Resource>(body, Options, token).ConfigureAwait(false)
                   ?? throw RequestFailure.Invalid("The body is empty.");
        }
        catch (DeserializationFailedException e)
        {
            var first = e.Exceptions.FirstOrDefault();
            throw RequestFailure.Invalid($"The body is not a valid FHIR R4 resource ({e.Exceptions.Count()} problems; first: {first?.ErrorCode ?? "unknown"}).");
        }
        catch (JsonException)
        {
            throw RequestFailure.Invalid("The body is not valid JSON.");
        }
        catch (NotSupportedException)
        {
            throw RequestFailure.Invalid("The body is not a FHIR R4 resource.");
        }
    }

    /// <summary>Serializes a resource.</summary>
    public static byte[] ToUtf8(Resource resource) => JsonSerializer.SerializeToUtf8Bytes(resource, Options);

    /// <summary>Parses stored JSON.</summary>
    public static Resource Parse(byte[] json) => JsonSerializer.Deserialize<Resource>(json, Options)!;
}
