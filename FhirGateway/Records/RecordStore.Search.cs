using System.Globalization;
using System.Text;
using Dapper;

namespace Health.FhirGateway.Records;

public sealed partial class RecordStore
{
    /// <summary>
    /// Current resources of a type matching every criterion, in insertion order after
    /// <paramref name="afterSequence"/>; the order never changes, so paging is stable while others write.
    /// </summary>
    /// <returns>The page, the total number of matches, and the cursor of the next page (null on the last page).</returns>
    /// <remarks>
    /// With <paramref name="sortByDate"/> the results are ordered by that date parameter (earliest
    /// value of each resource; resources without one last) and <paramref name="afterSequence"/> is an
    /// offset instead: sorted pages are not stable while others write.
    /// </remarks>
    public (IReadOnlyList<StoredResource> Page, long Total, long? Next) Search(string? type, IReadOnlyList<SearchCriterion> criteria, int count, long afterSequence,
        OwnerFilter? owners = null, string? sortByDate = null, bool descending = false)
    {
        var (where, parameters) = Where(type, criteria, owners);
        using var connection = Open();
        var total = connection.QuerySingle<long>($"SELECT COUNT(*) FROM current c WHERE {where}", parameters);
        if (count == 0)
            return ([], total, null);
        parameters.Add("after", afterSequence);
        parameters.Add("limit", count + 1);
        parameters.Add("sort", sortByDate);
        var page = sortByDate is null
            ? $"AND c.seq > @after ORDER BY c.seq LIMIT @limit"
            : $"ORDER BY (SELECT MIN(d.low) FROM search_dates d WHERE d.seq = c.seq AND d.param = @sort) IS NULL, (SELECT MIN(d.low) FROM search_dates d WHERE d.seq = c.seq AND d.param = @sort) {(descending ? "DESC" : "ASC")}, c.seq LIMIT @limit OFFSET @after";
        var rows = connection.Query<(long Seq, string Type, string Id, int Version, string Owner, long LastUpdated)>(
            $"SELECT c.seq, c.type, c.id, c.version, c.owner, c.last_updated FROM current c WHERE {where} {page}", parameters).AsList();
        var results = new List<StoredResource>(int.Min(rows.Count, count));
        var keys = new OwnerKeys(this, connection, null);
        foreach (var row in rows.Take(count))
        {
            var body = connection.QuerySingle<byte[]>(
                "SELECT body FROM versions WHERE type = @Type AND id = @Id AND version = @Version", new { row.Type, row.Id, row.Version });
            results.Add(keys.Open(row.Type, row.Id, row.Version, row.Owner, row.LastUpdated, body));
        }

        long? next = rows.Count <= count ? null : sortByDate is null ? rows[count - 1].Seq : afterSequence + count;
        return (results, total, next);
    }

    /// <summary>
    /// The patients whose current resources match a search, at most <paramref name="limit"/> + 1 of
    /// them (so a caller can tell that there are more). Records outside any compartment are not listed.
    /// </summary>
    public IReadOnlyList<string> MatchingOwners(string type, IReadOnlyList<SearchCriterion> criteria, int limit)
    {
        var (where, parameters) = Where(type, criteria, null);
        parameters.Add("limit", limit + 1);
        using var connection = Open();
        return connection.Query<string>($"SELECT DISTINCT c.owner FROM current c WHERE {where} AND c.owner <> '' LIMIT @limit", parameters).AsList();
    }

    private static (StringBuilder Where, DynamicParameters Parameters) Where(string? type, IReadOnlyList<SearchCriterion> criteria, OwnerFilter? owners)
    {
        // A null type searches every type: the patient's whole compartment for $everything. With
        // an index criterion, "+" keeps SQLite from walking every resource of the type through the
        // (type, id) index: the criterion's rows, looked up by insertion sequence, are far fewer.
        var byIndexRows = criteria.Count > 0 && criteria.All(c => c.Parameter.Kind != SearchKind.Id);
        var where = new StringBuilder(type is null ? "1 = 1" : byIndexRows ? "+c.type = @type" : "c.type = @type");
        where.Append(" AND c.deleted = 0 AND c.owner NOT IN (SELECT owner FROM data_keys WHERE shredded = 1)");
        var parameters = new DynamicParameters(new { type });
        if (owners is not null)
        {
            where.Append(" AND c.owner IN @owners");
            parameters.Add("owners", owners.Owners.ToList());
            if (owners.Restricted.Count > 0 && owners.WithheldLabelTokens.Count > 0)
            {
                where.Append(" AND NOT (c.owner IN @restricted AND c.seq IN (SELECT w.seq FROM search_tokens w WHERE w.token IN @withheld))");
                parameters.Add("restricted", owners.Restricted.ToList());
                parameters.Add("withheld", owners.WithheldLabelTokens.ToList());
            }
        }

        for (var i = 0; i < criteria.Count; i++)
        {
            var criterion = criteria[i];
            var p = $"p{i.ToString(CultureInfo.InvariantCulture)}";
            parameters.Add(p, criterion.Parameter.Name);
            if (criterion.Parameter.Kind == SearchKind.Id)
            {
                parameters.Add(p + "ids", criterion.Ids ?? []);
                where.Append(CultureInfo.InvariantCulture, $" AND c.id IN @{p}ids");
            }
            else if (criterion.Parameter.Kind == SearchKind.Date)
            {
                parameters.Add(p + "low", criterion.Low);
                parameters.Add(p + "high", criterion.High);
                var comparison = criterion.Prefix switch
                {
                    "ge" => $"d.high >= @{p}low",
                    "gt" => $"d.high > @{p}high",
                    "le" => $"d.low <= @{p}high",
                    "lt" => $"d.low < @{p}low",
                    "ne" => $"NOT (d.low >= @{p}low AND d.high <= @{p}high)",
                    _ => $"d.low >= @{p}low AND d.high <= @{p}high",
                };
                where.Append(CultureInfo.InvariantCulture, $" AND c.seq IN (SELECT d.seq FROM search_dates d WHERE d.type = @type AND d.param = @{p} AND {comparison})");
            }
            else
            {
                parameters.Add(p + "tokens", criterion.Tokens.ToList());
                where.Append(CultureInfo.InvariantCulture, $" AND c.seq IN (SELECT t.seq FROM search_tokens t WHERE t.token IN @{p}tokens)");
            }
        }

        return (where, parameters);
    }

    /// <summary>Whether a resource's index holds any of the tokens (each token is keyed by its parameter).</summary>
    public bool CarriesToken(string type, string id, IReadOnlyList<byte[]> tokens)
    {
        using var connection = Open();
        return connection.ExecuteScalar<long>(
            "SELECT EXISTS(SELECT 1 FROM search_tokens WHERE seq = (SELECT seq FROM current WHERE type = @type AND id = @id) AND token IN @tokens)",
            new { type, id, tokens = tokens.ToList() }) == 1;
    }

    /// <summary>Ids of current resources of a type carrying an index token (for conditional references and creates).</summary>
    public IReadOnlyList<string> FindByToken(string type, byte[] token)
    {
        using var connection = Open();
        return connection.Query<string>("""
            SELECT DISTINCT c.id FROM search_tokens t JOIN current c ON c.seq = t.seq
            WHERE t.token = @token AND c.type = @type AND c.deleted = 0 LIMIT 2
            """, new { type, token }).AsList();
    }
}
