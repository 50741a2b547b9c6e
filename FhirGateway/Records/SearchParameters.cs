namespace Health.FhirGateway.Records;

/// <summary>How a search parameter's values are indexed and matched.</summary>
public enum SearchKind
{
    /// <summary>Exact code or identifier: <c>system|code</c>, <c>code</c> or <c>system|</c>.</summary>
    Token,

    /// <summary>A reference to another resource, <c>Type/id</c>.</summary>
    Reference,

    /// <summary>A date or period, matched with the prefixes eq, ne, lt, gt, le, ge.</summary>
    Date,

    /// <summary>A name: case- and accent-insensitive, matching from the start of a word (at least 3 letters).</summary>
    String,

    /// <summary>The resource's own id (a FHIR token), matched against the stored resources themselves rather than an index.</summary>
    Id,
}

/// <summary>A supported search parameter.</summary>
/// <param name="ResourceType">The resource type it applies to.</param>
/// <param name="Name">The parameter name in the query.</param>
/// <param name="Kind">How it is indexed.</param>
/// <param name="Path">Element path selecting the indexed elements (see <see cref="ElementPath"/>).</param>
public sealed record SearchParameter(string ResourceType, string Name, SearchKind Kind, string Path);

/// <summary>Every search parameter the node supports; the CapabilityStatement is generated from this list.</summary>
public static class SearchParameters
{
    /// <summary>Resource types stored and searchable.</summary>
    public static readonly string[] ClinicalTypes =
        ["Observation", "Condition", "Encounter", "Procedure", "MedicationRequest", "Immunization", "DiagnosticReport", "CarePlan"];

    /// <summary>All of them, by resource type.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<SearchParameter>> ByType { get; } = Build();

    private static Dictionary<string, IReadOnlyList<SearchParameter>> Build()
    {
        var all = new List<SearchParameter>
        {
            new("Patient", "identifier", SearchKind.Token, "identifier"),
            new("Patient", "name", SearchKind.String, "name.family | name.given"),
            new("Patient", "family", SearchKind.String, "name.family"),
            new("Patient", "gender", SearchKind.Token, "gender"),
            new("Patient", "birthdate", SearchKind.Date, "birthDate"),
            new("Observation", "code", SearchKind.Token, "code"),
            new("Observation", "category", SearchKind.Token, "category"),
            new("Observation", "status", SearchKind.Token, "status"),
            new("Observation", "date", SearchKind.Date, "effective"),
            new("Condition", "code", SearchKind.Token, "code"),
            new("Condition", "category", SearchKind.Token, "category"),
            new("Condition", "clinical-status", SearchKind.Token, "clinicalStatus"),
            new("Condition", "onset-date", SearchKind.Date, "onset"),
            new("Encounter", "type", SearchKind.Token, "type"),
            new("Encounter", "class", SearchKind.Token, "class"),
            new("Encounter", "status", SearchKind.Token, "status"),
            new("Encounter", "date", SearchKind.Date, "period"),
            new("Procedure", "code", SearchKind.Token, "code"),
            new("Procedure", "status", SearchKind.Token, "status"),
            new("Procedure", "date", SearchKind.Date, "performed"),
            new("MedicationRequest", "code", SearchKind.Token, "medication"),
            new("MedicationRequest", "status", SearchKind.Token, "status"),
            new("MedicationRequest", "authoredon", SearchKind.Date, "authoredOn"),
            new("Immunization", "vaccine-code", SearchKind.Token, "vaccineCode"),
            new("Immunization", "status", SearchKind.Token, "status"),
            new("Immunization", "date", SearchKind.Date, "occurrence"),
            new("DiagnosticReport", "code", SearchKind.Token, "code"),
            new("DiagnosticReport", "category", SearchKind.Token, "category"),
            new("DiagnosticReport", "status", SearchKind.Token, "status"),
            new("DiagnosticReport", "date", SearchKind.Date, "effective"),
            new("CarePlan", "category", SearchKind.Token, "category"),
            new("CarePlan", "status", SearchKind.Token, "status"),
            new("CarePlan", "date", SearchKind.Date, "period"),
        };
        foreach (var type in ClinicalTypes)
        {
            var patientPath = type is "Immunization" ? "patient" : "subject";
            all.Add(new(type, "patient", SearchKind.Reference, patientPath));
            all.Add(new(type, "subject", SearchKind.Reference, patientPath));
        }

        return all.GroupBy(p => p.ResourceType).ToDictionary(g => g.Key, g => (IReadOnlyList<SearchParameter>)g.ToList());
    }

    /// <summary>The parameters of a resource type: its own and the ones every type has (<c>_id</c>, <c>_lastUpdated</c>, <c>identifier</c>, <c>_security</c>).</summary>
    public static IReadOnlyList<SearchParameter> For(string resourceType)
    {
        var own = ByType.GetValueOrDefault(resourceType, []);
        SearchParameter[] common =
        [
            new(resourceType, "_id", SearchKind.Id, "id"),
            new(resourceType, "_lastUpdated", SearchKind.Date, "meta.lastUpdated"),
            new(resourceType, "identifier", SearchKind.Token, "identifier"),
            new(resourceType, "_security", SearchKind.Token, "meta.security"),
        ];
        return [.. own, .. common.Where(c => own.All(o => o.Name != c.Name))];
    }
}
