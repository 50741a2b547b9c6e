using System.Globalization;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Records;
using SearchParameter = Health.FhirGateway.Records.SearchParameter;

namespace Health.FhirGateway.Fhir;

/// <summary>A parsed search: criteria (ANDed; comma-separated values ORed), page size and cursor.</summary>
public sealed class SearchQuery
{
    private const int DefaultCount = 50;
    private const int MaxCount = 500;
    private static readonly string[] DatePrefixes = ["eq", "ne", "lt", "gt", "le", "ge"];
    private readonly List<KeyValuePair<string, string>> used = [];

    private SearchQuery()
    {
    }

    /// <summary>The criteria.</summary>
    public List<SearchCriterion> Criteria { get; } = [];

    /// <summary>Entries per page; 0 asks for the total only.</summary>
    public int Count { get; private set; } = DefaultCount;

    /// <summary>The date parameter results are sorted by, or null for insertion order.</summary>
    public string? SortParameter { get; private set; }

    /// <summary>Whether the sort is newest first.</summary>
    public bool SortDescending { get; private set; }

    /// <summary>Whether <c>_include</c> asked for the patients of the matches.</summary>
    public bool IncludePatients { get; private set; }

    /// <summary>Whether the search names its patient (<c>patient</c>, <c>subject</c>, or a Patient's <c>_id</c>).</summary>
    public bool NamesPatient => Criteria.Any(c => c.Parameter.Name is "patient" or "subject" || (c.Parameter.ResourceType == "Patient" && c.Parameter.Name == "_id"));

    /// <summary>Sequence after which the page starts.</summary>
    public long After { get; private set; }

    /// <summary>Parses the query string of a search on <paramref name="type"/>.</summary>
    /// <exception cref="RequestFailure">400 for malformed values, or unknown parameters when <paramref name="strict"/>.</exception>
    public static SearchQuery Parse(string type, IQueryCollection query, SearchIndexer indexer, bool strict)
    {
        var parsed = new SearchQuery();
        var parameters = SearchParameters.For(type).ToDictionary(p => p.Name, StringComparer.Ordinal);
        foreach (var (name, values) in query)
        {
            foreach (var value in values.OfType<string>())
            {
                switch (name)
                {
                    case "_count":
                        parsed.Count = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var count) && count <= MaxCount
                            ? count
                            : throw RequestFailure.Invalid($"_count must be a number from 0 to {MaxCount}.");
                        parsed.used.Add(new(name, value));
                        break;
                    case "_summary" when value == "count":
                        parsed.Count = 0;
                        parsed.used.Add(new(name, value));
                        break;
                    case "_cursor":
                        parsed.After = long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var after)
                            ? after
                            : throw RequestFailure.Invalid("_cursor is not one this server made.");
                        break;
                    case "_sort":
                        var descending = value.StartsWith('-');
                        var sortName = descending ? value[1..] : value;
                        parsed.SortParameter = parameters.TryGetValue(sortName, out var sortBy) && sortBy.Kind == SearchKind.Date
                            ? sortBy.Name
                            : throw RequestFailure.Invalid($"_sort accepts the date parameters of {type} ({string.Join(", ", parameters.Values.Where(p => p.Kind == SearchKind.Date).Select(p => p.Name))}), with '-' for newest first.");
                        parsed.SortDescending = descending;
                        parsed.used.Add(new(name, value));
                        break;
                    case "_format" when value is "json" or "application/fhir+json" or "application/json":
                        break;
                    case "_include" when value == "*" || value.EndsWith(":patient", StringComparison.Ordinal) || value.EndsWith(":subject", StringComparison.Ordinal):
                        parsed.IncludePatients = true;
                        parsed.used.Add(new(name, value));
                        break;
                    default:
                        if (parameters.TryGetValue(name, out var parameter))
                        {
                            parsed.Criteria.AddRange(CriteriaFor(parameter, value, indexer));
                            parsed.used.Add(new(name, value));
                        }
                        else if (strict)
                        {
                            throw RequestFailure.Invalid($"Search parameter '{(name.Length > 64 ? name[..64] : name)}' is not supported for {type}.");
                        }

                        break;
                }
            }
        }

        return parsed;
    }

    /// <summary>The query string of the next page.</summary>
    public string NextQuery(long cursor)
        => string.Join('&', used.Append(new("_cursor", cursor.ToString(CultureInfo.InvariantCulture)))
            .Select(p => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(p.Value)}"));

    // A name of several words must match every word; other values are one criterion.
    private static IEnumerable<SearchCriterion> CriteriaFor(SearchParameter parameter, string value, SearchIndexer indexer)
        => parameter.Kind == SearchKind.String && !value.Contains(',', StringComparison.Ordinal)
            ? SearchIndexer.Normalize(value).Split(' ', StringSplitOptions.RemoveEmptyEntries).DefaultIfEmpty(string.Empty).Select(word => Criterion(parameter, word, indexer))
            : [Criterion(parameter, value, indexer)];

    private static SearchCriterion Criterion(SearchParameter parameter, string value, SearchIndexer indexer)
    {
        if (parameter.Kind == SearchKind.Date)
        {
            var prefix = value.Length > 2 && DatePrefixes.Contains(value[..2]) ? value[..2] : "eq";
            var text = prefix == "eq" && !value.StartsWith("eq", StringComparison.Ordinal) ? value : value[2..];
            var range = DateRanges.Parse(text) ?? throw RequestFailure.Invalid($"'{parameter.Name}' needs a FHIR date such as 2020, 2020-05 or 2020-05-17.");
            return new SearchCriterion(parameter, [], prefix, range.Low, range.High);
        }

        if (parameter.Kind == SearchKind.Id)
            return new SearchCriterion(parameter, [], Ids: value.Split(','));

        var tokens = new List<byte[]>();
        foreach (var alternative in value.Split(','))
        {
            if (indexer.QueryToken(parameter, alternative) is { } token)
                tokens.Add(token);
            else if (parameter.Kind == SearchKind.String)
                throw RequestFailure.Invalid($"'{parameter.Name}' matches from the start of a word and needs at least {SearchIndexer.MinimumPrefix} letters.");
        }

        return new SearchCriterion(parameter, tokens);
    }
}
