using Hl7.Fhir.Model;

namespace Health.FhirGateway.Records;

/// <summary>Finds every <see cref="ResourceReference"/> inside a resource, at any depth (contained resources included).</summary>
public static class ReferenceWalker
{
    /// <summary>All references, in document order, whether an element holds one or a list of them.</summary>
    public static IEnumerable<ResourceReference> All(Base element)
    {
        foreach (var (_, value) in element.EnumerateElements())
        {
            IEnumerable<Base> items = value switch
            {
                Base single => [single],
                IEnumerable<Base> list => list,
                _ => [],
            };
            foreach (var item in items)
            {
                if (item is ResourceReference reference)
                    yield return reference;
                foreach (var inner in All(item))
                    yield return inner;
            }
        }
    }
}
