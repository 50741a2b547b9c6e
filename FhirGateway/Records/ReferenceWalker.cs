using Hl7.Fhir.Model;

namespace Health.FhirGateway.Records;

/// <summary>Finds every <see cref="ResourceReference"/> inside a resource, at any depth (contained resources included).</summary>
public static class ReferenceWalker
{
    /// <summary>All references, in document order.</summary>
    public static IEnumerable<ResourceReference> All(Base element)
    {
        foreach (var (_, value) in element.EnumerateElements())
        {
            switch (value)
            {
                case ResourceReference reference:
                    yield return reference;
                    foreach (var inner in All(reference))
                        yield return inner;
                    break;
                case Base child:
                    foreach (var inner in All(child))
                        yield return inner;
                    break;
                case IEnumerable<Base> children:
                    foreach (var child in children)
                    {
                        foreach (var inner in All(child))
                            yield return inner;
                    }

                    break;
            }
        }
    }
}
