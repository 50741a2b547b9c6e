using Dapper;
using Health.Ledger.Storage;
using Microsoft.Data.Sqlite;

namespace Health.Ledger.Tests.Storage;

/// <summary>A write run through SQLite's own interface behaves as it would through Microsoft.Data.Sqlite.</summary>
public sealed class ReusedStatementTests : IDisposable
{
    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-statement-");

    private readonly ReusedStatement insert = new(
        "INSERT INTO t(id, number, flag, ratio, text, bytes, missing) VALUES (@id, @number, @flag, @ratio, @text, @bytes, @missing)",
        "@id", "@number", "@flag", "@ratio", "@text", "@bytes", "@missing");

    [Fact]
    public void Every_supported_value_is_stored_as_Microsoft_Data_Sqlite_would_store_it()
    {
        using var connection = Open("values.db");
        Assert.Equal(1, insert.Execute(connection, 1L, 42, true, 0.5, "zwölf", new byte[] { 0, 1, 255 }, null));
        Assert.Equal(1, insert.Execute(connection, 2L, long.MaxValue, false, -1.25, string.Empty, Array.Empty<byte>(), DBNull.Value));

        var rows = connection.Query<(long Id, long Number, long Flag, double Ratio, string Text, byte[] Bytes, object? Missing, string Types)>(
            "SELECT id, number, flag, ratio, text, bytes, missing, typeof(number) || typeof(flag) || typeof(ratio) || typeof(text) || typeof(bytes) || typeof(missing) FROM t ORDER BY id").ToList();
        Assert.Equal((1L, 42L, 1L, 0.5, "zwölf"), (rows[0].Id, rows[0].Number, rows[0].Flag, rows[0].Ratio, rows[0].Text));
        Assert.Equal(new byte[] { 0, 1, 255 }, rows[0].Bytes);
        Assert.Null(rows[0].Missing);
        Assert.Equal("integerintegerrealtextblobnull", rows[0].Types);
        Assert.Equal((long.MaxValue, 0L, -1.25, string.Empty), (rows[1].Number, rows[1].Flag, rows[1].Ratio, rows[1].Text));
        Assert.Equal("integerintegerrealtextblobnull", rows[1].Types);
    }

    [Fact]
    public void It_returns_the_rows_it_changed_and_writes_within_the_connections_transaction()
    {
        using var connection = Open("transaction.db");
        using var update = new ReusedStatement("UPDATE t SET number = number + 1 WHERE flag = @flag", "@flag");
        insert.Execute(connection, 1L, 1, true, 0.0, "a", Array.Empty<byte>(), null);
        insert.Execute(connection, 2L, 1, true, 0.0, "b", Array.Empty<byte>(), null);
        Assert.Equal(2, update.Execute(connection, true));
        Assert.Equal(0, update.Execute(connection, false));

        using (var transaction = connection.BeginTransaction())
        {
            insert.Execute(connection, 3L, 1, true, 0.0, "c", Array.Empty<byte>(), null);
            transaction.Rollback();
        }

        Assert.Equal([(1L, 2L), (2L, 2L)], connection.Query<(long, long)>("SELECT id, number FROM t ORDER BY id"));
    }

    [Fact]
    public void A_refused_write_throws_and_the_statement_runs_again_afterwards()
    {
        using var connection = Open("refused.db");
        insert.Execute(connection, 1L, 1, true, 0.0, "a", Array.Empty<byte>(), null);

        var refused = Assert.Throws<SqliteException>(() => insert.Execute(connection, 1L, 2, true, 0.0, "again", Array.Empty<byte>(), null));
        Assert.Equal(19, refused.SqliteErrorCode); // SQLITE_CONSTRAINT
        Assert.Throws<ArgumentException>(() => insert.Execute(connection, 2L, 1, true, 0.0, "a", Array.Empty<byte>()));
        Assert.Throws<ArgumentException>(() => insert.Execute(connection, 2L, 1, true, 0.0, Guid.NewGuid(), Array.Empty<byte>(), null));

        Assert.Equal(1, insert.Execute(connection, 2L, 1, true, 0.0, "b", Array.Empty<byte>(), null));
        Assert.Equal(2, connection.QuerySingle<long>("SELECT count(*) FROM t"));
    }

    [Fact]
    public void On_another_connection_it_writes_to_that_connections_database()
    {
        using (var first = Open("first.db"))
            insert.Execute(first, 1L, 1, true, 0.0, "first", Array.Empty<byte>(), null);
        using var second = Open("second.db");
        insert.Execute(second, 1L, 1, true, 0.0, "second", Array.Empty<byte>(), null);
        using var firstAgain = Open("first.db", create: false);
        insert.Execute(firstAgain, 2L, 1, true, 0.0, "first again", Array.Empty<byte>(), null);

        Assert.Equal(["first", "first again"], firstAgain.Query<string>("SELECT text FROM t ORDER BY id"));
        Assert.Equal(["second"], second.Query<string>("SELECT text FROM t ORDER BY id"));
    }

    [Fact]
    public void Closing_the_connection_lets_SQLite_close_the_database_files()
    {
        var file = Path.Combine(root.FullName, "closed.db");
        using (var connection = Open("closed.db"))
        {
            connection.Execute("PRAGMA journal_mode = WAL");
            insert.Execute(connection, 1L, 1, true, 0.0, "a", Array.Empty<byte>(), null);
            Assert.NotEmpty(OpenFilesOf(file));
        }

        // A statement left prepared would keep the database, its WAL and its index open after the
        // close; a projection replaced on disk must not be written to through them afterwards.
        Assert.Empty(OpenFilesOf(file));
        using var again = Open("closed.db", create: false);
        Assert.Equal(1, insert.Execute(again, 2L, 1, true, 0.0, "b", Array.Empty<byte>(), null));
    }

    private static List<string> OpenFilesOf(string database) => Directory.GetFiles("/proc/self/fd")
        .Select(fd =>
        {
            try
            {
                return new FileInfo(fd).LinkTarget;
            }
            catch (IOException)
            {
                return null;
            }
        })
        .OfType<string>()
        .Where(target => target.StartsWith(database, StringComparison.Ordinal))
        .ToList();

    private SqliteConnection Open(string name, bool create = true)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(root.FullName, name), Pooling = false }.ToString());
        connection.Open();
        if (create)
            connection.Execute("CREATE TABLE t(id INTEGER PRIMARY KEY, number INTEGER, flag INTEGER, ratio REAL, text TEXT, bytes BLOB, missing TEXT)");
        return connection;
    }

    public void Dispose()
    {
        insert.Dispose();
        root.Delete(recursive: true);
    }
}
