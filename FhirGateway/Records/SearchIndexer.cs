using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Hl7.Fhir.Model;

namespace Health.FhirGateway.Records;

/// <summary>
/// Turns a resource into search index rows that hold no readable PHI: tokens, references and
/// names become keyed HMAC tokens; dates become number ranges (Unix milliseconds).
/// </summary>
public sealed class SearchIndexer(byte[] indexKey)
{
    // One keyed HMAC per thread, reset after each token: keying it anew for every token cost more
    // than hashing the token (75 against 32 ms for a Synthea load's 67,000 tokens).
    private readonly ThreadLocal<IncrementalHash> macs = new(() => IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, indexKey));

    /// <summary>Names are indexed by every prefix of each word of at least this many letters.</summary>
    public const int MinimumPrefix = 3;

    /// <summary>Bytes kept of each HMAC-SHA256 token: 128 bits, as narrow index rows write fewer pages.</summary>
    public const int TokenLength = 16;

    /// <summary>Index rows of one resource: tokens (each an HMAC over its parameter's name and value) and date ranges by parameter.</summary>
    public (List<byte[]> Tokens, List<(string Param, long Low, long High)> Dates) Index(Resource resource)
    {
        var tokens = new List<byte[]>();
        var dates = new List<(string, long, long)>();
        foreach (var parameter in SearchParameters.For(resource.TypeName).Where(p => p.Kind != SearchKind.Id))
        {
            foreach (var value in ElementPath.Select(resource, parameter.Path))
            {
                switch (parameter.Kind)
                {
                    case SearchKind.Date:
                        if (DateRanges.Of(value) is { } range)
                            dates.Add((parameter.Name, range.Low, range.High));
                        break;
                    default:
                        foreach (var text in IndexTexts(parameter.Kind, value))
                            tokens.Add(Token(parameter.Name, text));
                        break;
                }
            }
        }

        return (tokens, dates);
    }

    /// <summary>The token a query value is matched with, or null when the value cannot match anything.</summary>
    public byte[]? QueryToken(SearchParameter parameter, string value) => parameter.Kind switch
    {
        SearchKind.Token => Token(parameter.Name, value.Contains('|', StringComparison.Ordinal) ? value : "*|" + value),
        SearchKind.Reference => Token(parameter.Name, "ref|" + (value.Contains('/', StringComparison.Ordinal) ? value : "Patient/" + value)),
        SearchKind.String => Normalize(value) is { Length: >= MinimumPrefix } normalized && !normalized.Contains(' ', StringComparison.Ordinal)
            ? Token(parameter.Name, "str|" + normalized)
            : null,
        _ => null,
    };

    private byte[] Token(string parameter, string text)
    {
        const int StackBytes = 512;
        var mac = macs.Value!;
        if (Encoding.UTF8.GetMaxByteCount(parameter.Length + 1 + text.Length) <= StackBytes)
        {
            Span<byte> input = stackalloc byte[StackBytes];
            var written = Encoding.UTF8.GetBytes(parameter, input);
            input[written++] = (byte)'\n';
            written += Encoding.UTF8.GetBytes(text, input[written..]);
            mac.AppendData(input[..written]);
        }
        else
        {
            mac.AppendData(Encoding.UTF8.GetBytes(parameter + "\n" + text));
        }

        Span<byte> hash = stackalloc byte[HMACSHA256.HashSizeInBytes];
        mac.GetHashAndReset(hash);
        return hash[..TokenLength].ToArray();
    }

    private static IEnumerable<string> IndexTexts(SearchKind kind, Base value)
    {
        switch (kind, value)
        {
            case (SearchKind.Reference, ResourceReference { Reference: { } reference }):
                yield return "ref|" + reference;
                break;
            case (SearchKind.String, PrimitiveType primitive) when primitive.JsonValue is string text:
                foreach (var word in Normalize(text).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    for (var length = int.Min(MinimumPrefix, word.Length); length <= word.Length; length++)
                        yield return "str|" + word[..length];
                }

                break;
            case (SearchKind.Token, CodeableConcept concept):
                foreach (var coding in concept.Coding)
                {
                    foreach (var text in SystemAndCode(coding.System, coding.Code))
                        yield return text;
                }

                break;
            case (SearchKind.Token, Coding coding):
                foreach (var text in SystemAndCode(coding.System, coding.Code))
                    yield return text;
                break;
            case (SearchKind.Token, Identifier identifier):
                foreach (var text in SystemAndCode(identifier.System, identifier.Value))
                    yield return text;
                break;
            case (SearchKind.Token, PrimitiveType primitive) when primitive.JsonValue is { } code:
                foreach (var text in SystemAndCode(null, Convert.ToString(code, CultureInfo.InvariantCulture)))
                    yield return text;
                break;
        }
    }

    private static IEnumerable<string> SystemAndCode(string? system, string? code)
    {
        if (code is null)
            yield break;
        yield return "*|" + code;
        yield return (system ?? string.Empty) + "|" + code;
        if (system is not null)
            yield return system + "|";
    }

    /// <summary>Lower case, accents removed, anything but letters and digits turned into spaces.</summary>
    public static string Normalize(string text)
    {
        var decomposed = text.Normalize(NormalizationForm.FormD);
        var builder = new StringBuilder(decomposed.Length);
        foreach (var c in decomposed)
        {
            var category = CharUnicodeInfo.GetUnicodeCategory(c);
            if (category == UnicodeCategory.NonSpacingMark)
                continue;
            builder.Append(char.IsLetterOrDigit(c) ? char.ToLowerInvariant(c) : ' ');
        }

        return builder.ToString().Trim();
    }
}
