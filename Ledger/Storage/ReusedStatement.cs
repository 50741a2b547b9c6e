using Microsoft.Data.Sqlite;

namespace Health.Ledger.Storage;

/// <summary>
/// A statement run on every applied entry of its kind: compiled once per connection and then only
/// rebound. Microsoft.Data.Sqlite keeps a statement compiled only for the command that ran it, and
/// compiling (parsing, planning, code generation) costs several times what running a one-row
/// statement does. Not thread-safe: for the connection that applies the log, which one thread uses.
/// </summary>
public sealed class ReusedStatement : IDisposable
{
    private readonly string sql;
    private readonly string[] parameterNames;
    private SqliteCommand? command;

    /// <summary>A statement with named parameters, bound by position in <see cref="Bind"/>.</summary>
    /// <param name="sql">The SQL text.</param>
    /// <param name="parameterNames">Its parameter names, with their prefix (<c>@name</c>).</param>
    public ReusedStatement(string sql, params string[] parameterNames)
    {
        this.sql = sql;
        this.parameterNames = parameterNames;
    }

    /// <summary>
    /// The command for <paramref name="connection"/>, within <paramref name="transaction"/>, with
    /// its parameters set to <paramref name="values"/> in the order they were named (null is SQL NULL).
    /// </summary>
    public SqliteCommand Bind(SqliteConnection connection, SqliteTransaction? transaction, params ReadOnlySpan<object?> values)
    {
        if (values.Length != parameterNames.Length)
            throw new ArgumentException($"The statement takes {parameterNames.Length} values, not {values.Length}.", nameof(values));
        if (command is null || command.Connection != connection)
        {
            command?.Dispose();
            command = connection.CreateCommand();
            command.CommandText = sql;
            foreach (var name in parameterNames)
                command.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        command.Transaction = transaction;
        for (var i = 0; i < values.Length; i++)
            command.Parameters[i].Value = values[i] ?? DBNull.Value;
        return command;
    }

    /// <inheritdoc/>
    public void Dispose() => command?.Dispose();
}
