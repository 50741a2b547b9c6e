using Hl7.Fhir.Model;

namespace Health.FhirGateway.Records;

/// <summary>Finds every <see cref="ResourceReference"/> inside a resource, at any depth (contained resources included).</summary>
public static class ReferenceWalker
{
    /// <summary>All references, in document order, whether an element holds one or a list of them.</summary>
    /// <remarks>
    /// Collected into one list by plain recursion: an iterator per level (each element's children
    /// yielded through every enclosing one) cost a Synthea Bundle's resources several times more.
    /// </remarks>
    public static List<ResourceReference> All(Base element)
    {
        var found = new List<ResourceReference>();
        CollectChildren(element, found);
        return found;
    }

    private static void CollectChildren(Base element, List<ResourceReference> found)
    {
        foreach (var (_, value) in element.EnumerateElements())
        {
            if (value is Base single)
            {
                Collect(single, found);
            }
            else if (value is IEnumerable<Base> list)
            {
                foreach (var item in list)
                    Collect(item, found);
            }
        }
    }

    private static void Collect(Base item, List<ResourceReference> found)
    {
        if (item is ResourceReference reference)
            found.Add(reference);
        CollectChildren(item, found);
    }
}
