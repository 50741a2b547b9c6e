using System.Text.Json;
using System.Text.Json.Serialization;

namespace Health.Consent.Policy;

/// <summary>The compact JSON form of a provision tree carried by <c>ConsentGranted</c> entries.</summary>
public static class ProvisionJson
{
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        MaxDepth = 4 * ConsentProvision.MaxDepth,
    };

    /// <summary>Writes a provision tree.</summary>
    public static string Write(ConsentProvision provision) => JsonSerializer.Serialize(provision, Options);

    /// <summary>Reads a provision tree, or returns null when the text is not a well-formed one.</summary>
    public static ConsentProvision? TryRead(string json)
    {
        try
        {
            var provision = JsonSerializer.Deserialize<ConsentProvision>(json, Options);
            return provision is not null && IsComplete(provision, 1) ? provision : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    // Deserialization leaves absent lists null; a tree with one is not well-formed.
    private static bool IsComplete(ConsentProvision provision, int depth)
        => depth <= ConsentProvision.MaxDepth
            && provision.Actors is not null && provision.Purposes is not null && provision.Classes is not null
            && provision.SecurityLabels is not null && provision.Provisions is not null
            && provision.Provisions.All(p => p is not null && IsComplete(p, depth + 1));
}
