using Microsoft.Data.Sqlite;

namespace Health.Ledger.Storage;

/// <summary>One kept connection: its commands, each compiled on first use and then only rebound.</summary>
public sealed class KeptConnection : IDisposable
{
    private readonly SqliteConnection connection;
    private readonly Dictionary<string, SqliteCommand> commands = new(StringComparer.Ordinal);

    internal KeptConnection(string connectionString)
    {
        connection = new SqliteConnection(connectionString);
        connection.Open();
    }

    /// <summary>
    /// The command for <paramref name="sql"/> on this connection with its parameters set to
    /// <paramref name="values"/> (null is SQL NULL). The same names must be given on every call for
    /// the same text. Each distinct text keeps its compiled statement as long as the connection is
    /// open, so the texts must come from a fixed set: values go in parameters, never in the text.
    /// </summary>
    public SqliteCommand Command(string sql, params ReadOnlySpan<(string Name, object? Value)> values)
    {
        if (!commands.TryGetValue(sql, out var command))
        {
            command = connection.CreateCommand();
            command.CommandText = sql;
            foreach (var (name, _) in values)
                command.Parameters.Add(new SqliteParameter { ParameterName = name });
            commands.Add(sql, command);
        }

        foreach (var (name, value) in values)
            command.Parameters[name].Value = value ?? DBNull.Value;
        return command;
    }

    /// <summary>The first column of the first row <paramref name="sql"/> returns, or default when it returns none or NULL.</summary>
    public T? Scalar<T>(string sql, params ReadOnlySpan<(string Name, object? Value)> values)
    {
        using var reader = Command(sql, values).ExecuteReader();
        return reader.Read() && !reader.IsDBNull(0) ? reader.GetFieldValue<T>(0) : default;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var command in commands.Values)
            command.Dispose();
        connection.Dispose();
    }
}
