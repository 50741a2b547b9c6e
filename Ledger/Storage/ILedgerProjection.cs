using Health.Ledger.Entries;
using Microsoft.Data.Sqlite;

namespace Health.Ledger.Storage;

/// <summary>
/// How a module keeps its own tables of the SQLite projection up to date. Apply runs inside the
/// ledger's transaction, in log order, identically on every node; it must be deterministic (no
/// clock, no randomness, no I/O beyond the given connection).
/// </summary>
public interface ILedgerProjection
{
    /// <summary>Creates the module's tables if they do not exist.</summary>
    void CreateSchema(SqliteConnection connection);

    /// <summary>Applies one entry.</summary>
    void Apply(LedgerEntry entry, SqliteConnection connection, SqliteTransaction transaction);
}
