using Hl7.Fhir.Model;

namespace Health.FhirGateway.Records;

/// <summary>
/// Evaluates the simple paths search parameters use (<c>code</c>, <c>name.family | name.given</c>,
/// <c>meta.lastUpdated</c>) straight on Firely's POCOs: element names joined by dots, alternatives
/// joined by <c>|</c>. Much cheaper than a FHIRPath engine for indexing every resource.
/// </summary>
public static class ElementPath
{
    /// <summary>Every element the path reaches, lists flattened.</summary>
    public static IEnumerable<Base> Select(Base root, string path)
    {
        foreach (var alternative in path.Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            IEnumerable<Base> current = [root];
            foreach (var name in alternative.Split('.'))
                current = current.SelectMany(element => Children(element, name));
            foreach (var element in current)
                yield return element;
        }
    }

    private static IEnumerable<Base> Children(Base element, string name)
    {
        if (!element.TryGetValue(name, out var value))
            return [];
        return value switch
        {
            Base single => [single],
            IEnumerable<Base> many => many,
            _ => [],
        };
    }
}
