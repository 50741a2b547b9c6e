namespace Health.Ledger.Entries;

/// <summary>
/// The entry kinds a node accepts. The ledger registers its own kinds; other modules register
/// theirs at start-up. Validation happens before an entry is proposed, so nothing malformed
/// reaches the log.
/// </summary>
public sealed class EntryKindRegistry
{
    private const int MaxNameLength = 64;
    private const int MaxFields = 32;
    private const int MaxValueLength = 4096;
    private readonly Dictionary<string, EntryKind> kinds = new(StringComparer.Ordinal);

    /// <summary>Creates a registry holding the ledger's own kinds.</summary>
    public EntryKindRegistry()
    {
        foreach (var kind in LedgerEntryKinds.All)
            Register(kind);
    }

    /// <summary>All registered kinds.</summary>
    public IEnumerable<EntryKind> Kinds => kinds.Values;

    /// <summary>Registers a kind.</summary>
    /// <exception cref="InvalidOperationException">A kind of that name is already registered.</exception>
    public void Register(EntryKind kind)
    {
        if (!kinds.TryAdd(kind.Name, kind))
            throw new InvalidOperationException($"Entry kind '{kind.Name}' is registered twice.");
    }

    /// <summary>Checks a command a client wants to append.</summary>
    /// <returns>Null when valid; otherwise a message saying what is wrong, safe to show to the client.</returns>
    public string? ValidateClientCommand(LedgerCommand command)
    {
        if (!kinds.TryGetValue(command.Kind, out var kind))
            return $"Unknown entry kind '{Truncate(command.Kind)}'.";
        if (!kind.ClientAppendable)
            return $"Entries of kind '{kind.Name}' are written by the ledger itself.";
        return ValidateFields(kind, command.Fields);
    }

    private static string? ValidateFields(EntryKind kind, IReadOnlyDictionary<string, string> fields)
    {
        if (fields.Count > MaxFields)
            return $"At most {MaxFields} fields are allowed.";
        foreach (var required in kind.RequiredFields)
        {
            if (!fields.TryGetValue(required, out var value) || string.IsNullOrEmpty(value))
                return $"Field '{required}' is required for kind '{kind.Name}'.";
        }

        foreach (var (name, value) in fields)
        {
            if (!kind.RequiredFields.Contains(name) && !kind.OptionalFields.Contains(name))
                return $"Field '{Truncate(name)}' is not defined for kind '{kind.Name}'.";
            if (value.Length > MaxValueLength)
                return $"Field '{name}' is longer than {MaxValueLength} characters.";
            if (HasControlCharacter(value))
                return $"Field '{name}' contains control characters.";
        }

        return null;
    }

    // The characters char.IsControl accepts (Unicode category Cc), in two vectorised scans.
    private static bool HasControlCharacter(string value)
        => value.AsSpan().ContainsAnyInRange('\u0000', '\u001F') || value.AsSpan().ContainsAnyInRange('\u007F', '\u009F');

    private static string Truncate(string value)
        => value.Length <= MaxNameLength ? value : value[..MaxNameLength] + "...";
}
