using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;

namespace Health.FhirGateway.Fhir;

/// <summary>One entry of a <see cref="Searchset"/>, its resource held as FHIR JSON.</summary>
/// <param name="FullUrl">The entry's full URL, when it has one.</param>
/// <param name="Resource">The resource's JSON, written into the Bundle as it is.</param>
/// <param name="Mode">The search mode: <see cref="Match"/>, <see cref="Include"/> or <see cref="Outcome"/>.</param>
public sealed record SearchsetEntry(string? FullUrl, byte[] Resource, string Mode)
{
    /// <summary>The entry matched the search.</summary>
    public const string Match = "match";

    /// <summary>The entry was included with the matches (<c>_include</c>).</summary>
    public const string Include = "include";

    /// <summary>The entry is an OperationOutcome about the search.</summary>
    public const string Outcome = "outcome";

    /// <summary>An entry for a resource built here.</summary>
    public static SearchsetEntry Of(Resource resource, string mode, string? fullUrl = null) => new(fullUrl, FhirJson.ToUtf8(resource), mode);
}

/// <summary>
/// A searchset Bundle made of stored FHIR JSON: each resource is written as the bytes it was stored
/// (or received) as, rather than parsed into Firely's model and serialised again, which took
/// milliseconds each way for a large ExplanationOfBenefit.
/// </summary>
/// <param name="total">The number of matches in all pages, when known.</param>
public sealed class Searchset(long? total)
{
    /// <summary>The number of matches in all pages, when known.</summary>
    public long? Total { get; } = total;

    /// <summary>The Bundle's links (self, next), in order.</summary>
    public List<(string Relation, string Url)> Links { get; } = [];

    /// <summary>The entries, in order.</summary>
    public List<SearchsetEntry> Entries { get; } = [];

    /// <summary>The Bundle as FHIR JSON.</summary>
    public byte[] ToUtf8()
    {
        using var output = new MemoryStream(Entries.Sum(e => e.Resource.Length + 128) + 256);
        // As Firely writes FHIR JSON: the Bundle is served as JSON, never inside HTML, so links keep
        // their & and + rather than \u0026 and \u002B.
        using (var writer = new Utf8JsonWriter(output, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteString("resourceType", "Bundle");
            writer.WriteString("type", "searchset");
            if (Total is { } count)
                writer.WriteNumber("total", count);
            if (Links.Count > 0)
            {
                writer.WriteStartArray("link");
                foreach (var (relation, url) in Links)
                {
                    writer.WriteStartObject();
                    writer.WriteString("relation", relation);
                    writer.WriteString("url", url);
                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
            }

            if (Entries.Count > 0)
            {
                writer.WriteStartArray("entry");
                foreach (var entry in Entries)
                {
                    writer.WriteStartObject();
                    if (entry.FullUrl is { } fullUrl)
                        writer.WriteString("fullUrl", fullUrl);
                    writer.WritePropertyName("resource");
                    writer.WriteRawValue(entry.Resource, skipInputValidation: true);
                    writer.WriteStartObject("search");
                    writer.WriteString("mode", entry.Mode);
                    writer.WriteEndObject();
                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }

        return output.ToArray();
    }

    /// <summary>Writes the Bundle as the response.</summary>
    public Task WriteAsync(HttpContext context) => FhirEndpoints.WriteJsonAsync(context, ToUtf8());

    /// <summary>
    /// Reads a searchset another member sent: its total and its entries, each resource kept as the
    /// JSON it arrived as. Checked for shape (a Bundle whose entries are objects carrying a resource
    /// with a resource type), not validated as FHIR: custodians are admitted members answering over
    /// mutual TLS, and their records were validated when they were stored.
    /// </summary>
    /// <exception cref="FormatException">It is not a searchset of that shape.</exception>
    public static async Task<Searchset> ReadAsync(Stream json, CancellationToken token)
    {
        try
        {
            using var document = await JsonDocument.ParseAsync(json, cancellationToken: token).ConfigureAwait(false);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("resourceType", out var type) || !type.ValueEquals("Bundle"))
                throw new FormatException("Not a Bundle.");
            var set = new Searchset(root.TryGetProperty("total", out var total) && total.TryGetInt64(out var count) ? count : null);
            if (!root.TryGetProperty("entry", out var entries))
                return set;
            if (entries.ValueKind != JsonValueKind.Array)
                throw new FormatException("The Bundle's entry is not an array.");
            foreach (var entry in entries.EnumerateArray())
            {
                if (entry.ValueKind != JsonValueKind.Object || !entry.TryGetProperty("resource", out var resource)
                    || resource.ValueKind != JsonValueKind.Object || !resource.TryGetProperty("resourceType", out var resourceType) || resourceType.ValueKind != JsonValueKind.String)
                    throw new FormatException("A Bundle entry carries no resource.");
                var mode = entry.TryGetProperty("search", out var search) && search.ValueKind == JsonValueKind.Object
                           && search.TryGetProperty("mode", out var given) && given.ValueKind == JsonValueKind.String
                    ? given.GetString()!
                    : SearchsetEntry.Match;
                var fullUrl = entry.TryGetProperty("fullUrl", out var url) && url.ValueKind == JsonValueKind.String ? url.GetString() : null;
                set.Entries.Add(new SearchsetEntry(fullUrl, JsonMarshal.GetRawUtf8Value(resource).ToArray(), mode));
            }

            return set;
        }
        catch (JsonException e)
        {
            throw new FormatException("Not JSON.", e);
        }
    }
}
