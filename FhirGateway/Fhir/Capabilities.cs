using Health.FhirGateway.Records;
using Hl7.Fhir.Model;

namespace Health.FhirGateway.Fhir;

/// <summary>The CapabilityStatement, generated from what the server actually supports.</summary>
public static class Capabilities
{
    /// <summary>Every R4 resource type may be stored through a transaction and read back.</summary>
    public static IReadOnlySet<string> StoredTypes { get; } = new HashSet<string>(ModelInfo.SupportedResources, StringComparer.Ordinal);

    /// <summary>The statement for this server.</summary>
    public static CapabilityStatement Statement(HttpContext context) => new()
    {
        Status = PublicationStatus.Active,
        Date = "2026-11-25",
        Kind = CapabilityStatementKind.Instance,
        FhirVersion = FHIRVersion.N4_0_1,
        Format = ["application/fhir+json"],
        Software = new CapabilityStatement.SoftwareComponent { Name = "health-node" },
        Implementation = new CapabilityStatement.ImplementationComponent
        {
            Description = "Health ledger provider node: encrypted record store; names are searched by word prefixes of at least 3 letters.",
            Url = $"{context.Request.Scheme}://{context.Request.Host}/fhir",
        },
        Rest =
        [
            new CapabilityStatement.RestComponent
            {
                Mode = CapabilityStatement.RestfulCapabilityMode.Server,
                Interaction = [new CapabilityStatement.SystemInteractionComponent { Code = CapabilityStatement.SystemRestfulInteraction.Transaction }],
                Resource = StoredTypes.Order(StringComparer.Ordinal).Select(Resource).ToList(),
            },
        ],
    };

    private static CapabilityStatement.ResourceComponent Resource(string type) => new()
    {
        Type = type,
        Versioning = CapabilityStatement.ResourceVersionPolicy.Versioned,
        ReadHistory = true,
        ConditionalCreate = true,
        Interaction =
        [
            new CapabilityStatement.ResourceInteractionComponent { Code = CapabilityStatement.TypeRestfulInteraction.Read },
            new CapabilityStatement.ResourceInteractionComponent { Code = CapabilityStatement.TypeRestfulInteraction.Vread },
            new CapabilityStatement.ResourceInteractionComponent { Code = CapabilityStatement.TypeRestfulInteraction.SearchType },
            new CapabilityStatement.ResourceInteractionComponent { Code = CapabilityStatement.TypeRestfulInteraction.Create },
            new CapabilityStatement.ResourceInteractionComponent { Code = CapabilityStatement.TypeRestfulInteraction.Update },
            new CapabilityStatement.ResourceInteractionComponent { Code = CapabilityStatement.TypeRestfulInteraction.Delete },
            new CapabilityStatement.ResourceInteractionComponent { Code = CapabilityStatement.TypeRestfulInteraction.HistoryInstance },
        ],
        SearchInclude = type == "Patient" ? [] : ["*:patient"],
        Operation = type == "Patient"
            ? [new CapabilityStatement.OperationComponent { Name = "everything", Definition = "http://hl7.org/fhir/OperationDefinition/Patient-everything" }]
            : [],
        UpdateCreate = false,
        ConditionalUpdate = false,
        ConditionalDelete = CapabilityStatement.ConditionalDeleteStatus.NotSupported,
        SearchParam = SearchParameters.For(type).Select(p => new CapabilityStatement.SearchParamComponent
        {
            Name = p.Name,
            Type = p.Kind switch
            {
                SearchKind.Date => SearchParamType.Date,
                SearchKind.Reference => SearchParamType.Reference,
                SearchKind.String => SearchParamType.String,
                _ => SearchParamType.Token,
            },
        }).ToList(),
    };
}
