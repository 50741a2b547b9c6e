namespace Health.FhirGateway.Records;

/// <summary>One condition of a search: any of the tokens, or a date comparison.</summary>
/// <param name="Parameter">The parameter.</param>
/// <param name="Tokens">For token, reference and string parameters: the resource matches if it has any of them.</param>
/// <param name="Prefix">For dates: eq, ne, lt, gt, le or ge.</param>
/// <param name="Low">For dates: start of the queried range (Unix ms).</param>
/// <param name="High">For dates: end of the queried range (Unix ms).</param>
/// <param name="Ids">For <c>_id</c>: the resource matches if its id is one of them.</param>
public sealed record SearchCriterion(SearchParameter Parameter, IReadOnlyList<byte[]> Tokens, string Prefix = "eq", long Low = 0, long High = 0, IReadOnlyList<string>? Ids = null);
