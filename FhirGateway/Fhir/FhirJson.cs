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

    // Below this many entries a Bundle is read in one pass; above it, its resources in parallel.
    private const int ParallelEntries = 32;

    /// <summary>
    /// Reads a resource from a request body. The resources of a large Bundle are read in parallel:
    /// the Bundle without them and each of them are deserialized (and validated) separately.
    /// </summary>
    /// <exception cref="RequestFailure">400 when the body is not JSON or not a valid R4 resource; the message never echoes the content.</exception>
    public static async Task<Resource> ReadAsync(Stream body, CancellationToken token)
    {
        try
        {
            using var document = await JsonDocument.ParseAsync(body, cancellationToken: token).ConfigureAwait(false);
            var root = document.RootElement;
            return IsLargeBundle(root) ? ReadBundle(root) : Deserialize(root);
        }
        catch (JsonException)
        {
            throw RequestFailure.Invalid("The body is not valid JSON.");
        }
    }

    private static bool IsLargeBundle(JsonElement root)
        => root.ValueKind == JsonValueKind.Object
           && root.TryGetProperty("resourceType", out var type) && type.ValueEquals("Bundle")
           && root.TryGetProperty("entry", out var entries) && entries.ValueKind == JsonValueKind.Array
           && entries.GetArrayLength() >= ParallelEntries;

    private static Bundle ReadBundle(JsonElement root)
    {
        var entries = root.GetProperty("entry");
        var resources = new JsonElement?[entries.GetArrayLength()];
        var index = 0;
        foreach (var entry in entries.EnumerateArray())
            resources[index++] = entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("resource", out var resource) ? resource : null;

        var bundle = Deserialize(WithoutEntryResources(root)) as Bundle
                     ?? throw RequestFailure.Invalid("The body is not a FHIR R4 resource.");
        if (bundle.Entry.Count != resources.Length)
            throw RequestFailure.Invalid("Every entry of the Bundle must be an object.");
        var parsed = new Resource?[resources.Length];
        var failures = new (int Count, string? FirstCode)?[resources.Length];
        Parallel.For(0, resources.Length, i =>
        {
            if (resources[i] is not { } element)
                return;
            try
            {
                parsed[i] = element.Deserialize<Resource>(Options);
            }
            catch (DeserializationFailedException e)
            {
                failures[i] = (e.Exceptions.Count(), e.Exceptions.FirstOrDefault()?.ErrorCode);
            }
            catch (Exception e) when (e is JsonException or NotSupportedException)
            {
                failures[i] = (1, null);
            }
        });
        var failed = failures.OfType<(int Count, string? FirstCode)>().ToList();
        if (failed.Count > 0)
            throw Invalid(failed.Sum(f => f.Count), failed[0].FirstCode);
        for (var i = 0; i < parsed.Length; i++)
            bundle.Entry[i].Resource = parsed[i];
        return bundle;
    }

    // The Bundle with every entry's resource left out, to validate everything but the resources.
    private static JsonElement WithoutEntryResources(JsonElement root)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var property in root.EnumerateObject())
            {
                if (!property.NameEquals("entry"))
                {
                    property.WriteTo(writer);
                    continue;
                }

                writer.WriteStartArray("entry");
                foreach (var entry in property.Value.EnumerateArray())
                {
                    if (entry.ValueKind != JsonValueKind.Object)
                    {
                        entry.WriteTo(writer);
                        continue;
                    }

                    writer.WriteStartObject();
                    foreach (var field in entry.EnumerateObject().Where(f => !f.NameEquals("resource")))
                        field.WriteTo(writer);
                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }

    private static Resource Deserialize(JsonElement element)
    {
        try
        {
            return element.Deserialize<Resource>(Options) ?? throw RequestFailure.Invalid("The body is empty.");
        }
        catch (DeserializationFailedException e)
        {
            throw Invalid(e.Exceptions.Count(), e.Exceptions.FirstOrDefault()?.ErrorCode);
        }
        catch (NotSupportedException)
        {
            throw RequestFailure.Invalid("The body is not a FHIR R4 resource.");
        }
    }

    private static RequestFailure Invalid(int problems, string? firstCode)
        => RequestFailure.Invalid($"The body is not a valid FHIR R4 resource ({problems} problems; first: {firstCode ?? "unknown"}).");

    /// <summary>Serializes a resource.</summary>
    public static byte[] ToUtf8(Resource resource) => JsonSerializer.SerializeToUtf8Bytes(resource, Options);

    /// <summary>Parses stored JSON.</summary>
    public static Resource Parse(byte[] json) => JsonSerializer.Deserialize<Resource>(json, Options)!;
}
