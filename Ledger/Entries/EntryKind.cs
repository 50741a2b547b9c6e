namespace Health.Ledger.Entries;

/// <summary>
/// The schema of one entry kind: its name and the fields an entry of that kind must and may carry.
/// </summary>
/// <param name="Name">The kind name, for example <c>Checkpoint</c>.</param>
/// <param name="RequiredFields">Fields every entry of this kind carries.</param>
/// <param name="OptionalFields">Fields an entry of this kind may carry.</param>
/// <param name="ClientAppendable">Whether clients may append this kind directly; kinds the ledger writes itself are not.</param>
public sealed record EntryKind(string Name, IReadOnlySet<string> RequiredFields, IReadOnlySet<string> OptionalFields, bool ClientAppendable = true)
{
    /// <summary>Creates a kind from field name lists.</summary>
    public static EntryKind Create(string name, string[] required, string[]? optional = null, bool clientAppendable = true)
        => new(name, new HashSet<string>(required, StringComparer.Ordinal), new HashSet<string>(optional ?? [], StringComparer.Ordinal), clientAppendable);
}
