namespace Health.FhirGateway.Records;

/// <summary>
/// Which patients' records a search may return: only the listed owners, and among the
/// <paramref name="Restricted"/> ones nothing carrying a withheld security label.
/// </summary>
/// <param name="Owners">Owners whose records may be returned (<see cref="RecordStore.NodeOwner"/> for records outside any patient's compartment).</param>
/// <param name="Restricted">Owners whose consent withholds labelled records.</param>
/// <param name="WithheldLabelTokens">Index tokens of the withheld security labels.</param>
public sealed record OwnerFilter(IReadOnlyCollection<string> Owners, IReadOnlyCollection<string> Restricted, IReadOnlyList<byte[]> WithheldLabelTokens)
{
    /// <summary>One patient's records, nothing withheld.</summary>
    public static OwnerFilter Only(string owner) => new([owner], [], []);
}
