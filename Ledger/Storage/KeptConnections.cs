using Microsoft.Data.Sqlite;

namespace Health.Ledger.Storage;

/// <summary>
/// A few connections to one SQLite database kept open for the queries run on every request, each
/// keeping the statements it has compiled. Microsoft.Data.Sqlite keeps a compiled statement only
/// for the command that ran it and finalizes it when the connection returns to its pool, and
/// Dapper makes a new command per call, so a pooled query is parsed, planned and compiled again on
/// every run: several times the cost of running a one-row lookup. Safe on any thread; a connection
/// serves one query at a time.
/// </summary>
/// <param name="connectionString">The database's connection string; the connections are opened without Microsoft.Data.Sqlite's pooling.</param>
/// <param name="keep">How many idle connections are kept; more are opened while demand is higher and closed after use.</param>
public sealed class KeptConnections(string connectionString, int keep = 16) : IDisposable
{
    private readonly string connectionString = new SqliteConnectionStringBuilder(connectionString) { Pooling = false }.ToString();
    private readonly Stack<KeptConnection> idle = new();
    private bool disposed;

    /// <summary>Runs <paramref name="query"/> on a kept connection, opening one if none is idle.</summary>
    /// <returns>What the query returned; it must not hold on to the connection or its readers.</returns>
    /// <exception cref="ObjectDisposedException">The connections were disposed.</exception>
    /// <exception cref="SqliteException">SQLite refused the query; its connection is closed, not kept.</exception>
    public T Query<T>(Func<KeptConnection, T> query)
    {
        var connection = Take();
        T result;
        try
        {
            result = query(connection);
        }
        catch
        {
            connection.Dispose();
            throw;
        }

        Return(connection);
        return result;
    }

    /// <summary>Closes the idle connections (the file is about to be replaced, or the store closed); those in use close when their query ends if <see cref="Dispose"/> was called.</summary>
    public void CloseIdle()
    {
        KeptConnection[] closing;
        lock (idle)
        {
            closing = [.. idle];
            idle.Clear();
        }

        foreach (var connection in closing)
            connection.Dispose();
    }

    private KeptConnection Take()
    {
        lock (idle)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (idle.TryPop(out var kept))
                return kept;
        }

        return new KeptConnection(connectionString);
    }

    private void Return(KeptConnection connection)
    {
        lock (idle)
        {
            if (!disposed && idle.Count < keep)
            {
                idle.Push(connection);
                return;
            }
        }

        connection.Dispose();
    }

    /// <summary>Closes the idle connections and every one in use as its query ends.</summary>
    public void Dispose()
    {
        lock (idle)
            disposed = true;
        CloseIdle();
    }
}
