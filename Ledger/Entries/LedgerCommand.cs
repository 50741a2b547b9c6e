namespace Health.Ledger.Entries;

/// <summary>
/// What a module asks the ledger to record: a kind and its fields. The ledger turns it into a
/// <see cref="LedgerEntry"/> when it is applied, adding the index, the leader's timestamp and the
/// predecessor's hash.
/// </summary>
/// <param name="Kind">The entry kind, registered in an <see cref="EntryKindRegistry"/>.</param>
/// <param name="Fields">Field values by name; never patient-identifying data in plain text.</param>
public sealed record LedgerCommand(string Kind, IReadOnlyDictionary<string, string> Fields)
{
    /// <summary>Largest encoded command accepted, in bytes.</summary>
    public const int MaxEncodedSize = 16 * 1024;

    internal void WriteTo(CanonicalWriter writer)
    {
        writer.WriteShortString(Kind);
        writer.WriteFields(Fields);
    }

    internal static LedgerCommand ReadFrom(ref CanonicalReader reader)
    {
        var kind = reader.ReadShortString();
        return new LedgerCommand(kind, reader.ReadFields());
    }
}
