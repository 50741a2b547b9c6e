using System.Text;
using Microsoft.Data.Sqlite;

namespace Health.FhirGateway.Records;

/// <summary>
/// Inserts rows into one table with prepared multi-row <c>INSERT</c> statements: rows are buffered
/// and written <see cref="RowsPerStatement"/> at a time, the rest one by one on <see cref="Flush"/>.
/// One statement per row costs more in binding and stepping than the row itself.
/// </summary>
internal sealed class BatchedInsert : IDisposable
{
    /// <summary>Rows written by one full statement.</summary>
    public const int RowsPerStatement = 16;

    private readonly SqliteCommand many, one;
    private readonly int columns;
    private readonly List<object> pending = [];

    /// <param name="connection">The connection.</param>
    /// <param name="transaction">The transaction the rows belong to.</param>
    /// <param name="insert">The statement's verb: <c>INSERT</c>, or <c>INSERT OR IGNORE</c> where a repeated row is harmless.</param>
    /// <param name="table">The table.</param>
    /// <param name="columnNames">Its columns, in the order <see cref="Add"/> takes values.</param>
    public BatchedInsert(SqliteConnection connection, SqliteTransaction transaction, string insert, string table, params string[] columnNames)
    {
        columns = columnNames.Length;
        var head = $"{insert} INTO {table}({string.Join(", ", columnNames)}) VALUES ";
        many = Prepare(connection, transaction, head, columns, RowsPerStatement);
        one = Prepare(connection, transaction, head, columns, 1);
    }

    /// <summary>Adds a row; writes a full statement's worth when enough are buffered.</summary>
    public void Add(params object[] values)
    {
        pending.AddRange(values);
        if (pending.Count < columns * RowsPerStatement)
            return;
        Run(many, 0, RowsPerStatement);
        pending.Clear();
    }

    /// <summary>Writes the buffered rows.</summary>
    public void Flush()
    {
        for (var row = 0; row < pending.Count / columns; row++)
            Run(one, row * columns, 1);
        pending.Clear();
    }

    private void Run(SqliteCommand command, int offset, int rows)
    {
        for (var i = 0; i < rows * columns; i++)
            command.Parameters[i].Value = pending[offset + i];
        command.ExecuteNonQuery();
    }

    private static SqliteCommand Prepare(SqliteConnection connection, SqliteTransaction transaction, string head, int columns, int rows)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        var sql = new StringBuilder(head);
        for (var row = 0; row < rows; row++)
        {
            sql.Append(row == 0 ? "(" : ", (");
            for (var column = 0; column < columns; column++)
            {
                var name = $"$p{row}_{column}";
                sql.Append(column == 0 ? name : ", " + name);
                command.Parameters.Add(new SqliteParameter { ParameterName = name });
            }

            sql.Append(')');
        }

        command.CommandText = sql.ToString();
        command.Prepare();
        return command;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        many.Dispose();
        one.Dispose();
    }
}
