using Health.Ledger.Storage;
using Microsoft.Data.Sqlite;

namespace Health.Ledger.Tests.Storage;

public sealed class KeptConnectionsTests : IDisposable
{
    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-kept-");

    private string ConnectionString => new SqliteConnectionStringBuilder { DataSource = Path.Combine(root.FullName, "kept.db") }.ToString();

    private void Write(string sql, params (string Name, object Value)[] values)
    {
        using var connection = new SqliteConnection(ConnectionString + ";Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in values)
            command.Parameters.AddWithValue(name, value);
        command.ExecuteNonQuery();
    }

    [Fact]
    public void A_kept_statement_run_again_sees_what_was_written_since_and_takes_new_values()
    {
        Write("PRAGMA journal_mode = WAL; CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT NOT NULL)");
        using var kept = new KeptConnections(ConnectionString);
        string? Note(long id) => kept.Query(c => c.Scalar<string>("SELECT text FROM notes WHERE id = @id", ("@id", id)));

        Assert.Null(Note(1));
        Write("INSERT INTO notes(id, text) VALUES (@id, @text)", ("@id", 1L), ("@text", "first"));
        Write("INSERT INTO notes(id, text) VALUES (@id, @text)", ("@id", 2L), ("@text", "second"));
        Assert.Equal("first", Note(1));
        Assert.Equal("second", Note(2));
        Write("UPDATE notes SET text = 'changed' WHERE id = 1");
        Assert.Equal("changed", Note(1));
    }

    [Fact]
    public void A_refused_query_is_reported_and_the_next_one_runs()
    {
        Write("CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT NOT NULL)");
        using var kept = new KeptConnections(ConnectionString);
        Assert.Throws<SqliteException>(() => kept.Query(c => c.Scalar<long>("SELECT count(*) FROM missing")));
        Assert.Equal(0, kept.Query(c => c.Scalar<long>("SELECT count(*) FROM notes")));
    }

    [Fact]
    public void Closed_connections_leave_the_file_free_and_disposed_ones_refuse_queries()
    {
        Write("CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT NOT NULL)");
        var kept = new KeptConnections(ConnectionString);
        Assert.Equal(0, kept.Query(c => c.Scalar<long>("SELECT count(*) FROM notes")));
        kept.Dispose();

        // No connection (nor a statement keeping one alive) has the file open.
        Assert.DoesNotContain(OpenFiles(), file => file.StartsWith(Path.Combine(root.FullName, "kept.db"), StringComparison.Ordinal));
        Assert.Throws<ObjectDisposedException>(() => kept.Query(c => c.Scalar<long>("SELECT count(*) FROM notes")));
    }

    private static IEnumerable<string> OpenFiles()
        => new DirectoryInfo("/proc/self/fd").EnumerateFileSystemInfos().Select(fd => fd.LinkTarget).OfType<string>().ToList();

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        root.Delete(recursive: true);
    }
}
