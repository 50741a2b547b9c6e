using Microsoft.Data.Sqlite;

namespace Health.Ledger.Storage;

/// <summary>
/// Counts the connections open on the projection file so that it can be replaced (a snapshot
/// installed, the projection reset) with none open. SQLite keeps a WAL database's recent pages in
/// the -wal and -shm files beside it, found by name: a connection open on the old file while they
/// are removed and the new file moved into place would read one database's pages through the
/// other's index, which SQLite reports as a malformed database image. The connections kept open
/// for frequent queries (<see cref="Query"/>) are closed once an exclusion is granted.
/// </summary>
/// <param name="connectionString">The projection's connection string.</param>
internal sealed class ProjectionReaders(string connectionString) : IDisposable
{
    private enum Exclusion { None, Pending, Granted }

    // How many connections the current flow holds: one it opens while holding another (a query
    // inside a query) is let in while an exclusion waits, since the exclusion waits for the first.
    private static readonly AsyncLocal<int> HeldByThisFlow = new();

    private readonly object sync = new();
    private readonly string connectionString = connectionString;
    private readonly KeptConnections kept = new(connectionString);
    private int open;
    private Exclusion exclusion;

    /// <summary>Counts one more open connection, first waiting out a replacement in progress.</summary>
    private void Enter()
    {
        lock (sync)
        {
            while (exclusion == Exclusion.Granted || exclusion == Exclusion.Pending && HeldByThisFlow.Value == 0)
                Monitor.Wait(sync);
            open++;
        }

        HeldByThisFlow.Value++;
    }

    /// <summary>Counts one connection closed.</summary>
    private void Exit()
    {
        HeldByThisFlow.Value = int.Max(0, HeldByThisFlow.Value - 1);
        lock (sync)
        {
            if (--open == 0)
                Monitor.PulseAll(sync);
        }
    }

    /// <summary>
    /// Holds new connections off and waits up to <paramref name="wait"/> (or without limit, given
    /// <see cref="Timeout.InfiniteTimeSpan"/>) for the open ones to close.
    /// </summary>
    /// <returns>The exclusion, to dispose once the file is replaced; null if connections stayed open (nothing is held then).</returns>
    public Excluded? TryExclude(TimeSpan wait)
    {
        var deadline = wait == Timeout.InfiniteTimeSpan ? long.MaxValue : Environment.TickCount64 + (long)wait.TotalMilliseconds;
        lock (sync)
        {
            // One replacement at a time: they all run on the thread that applies the log.
            exclusion = Exclusion.Pending;
            while (open > 0)
            {
                var remaining = deadline == long.MaxValue ? Timeout.Infinite : (int)long.Max(0, deadline - Environment.TickCount64);
                if (remaining == 0 || !Monitor.Wait(sync, remaining) && open > 0)
                {
                    exclusion = Exclusion.None;
                    Monitor.PulseAll(sync);
                    return null;
                }
            }

            exclusion = Exclusion.Granted;
            kept.CloseIdle();
            return new Excluded(this);
        }
    }

    private void EndExclusion()
    {
        lock (sync)
        {
            exclusion = Exclusion.None;
            Monitor.PulseAll(sync);
        }
    }

    /// <summary>Opens a connection that counts itself here while it is open.</summary>
    public SqliteConnection Open()
    {
        var connection = new CountedConnection(connectionString, this);
        connection.Open();
        return connection;
    }

    /// <summary>Runs a frequent query on a kept connection (its statements stay compiled), counted here while it runs.</summary>
    public T Query<T>(Func<KeptConnection, T> query)
    {
        Enter();
        try
        {
            return kept.Query(query);
        }
        finally
        {
            Exit();
        }
    }

    /// <inheritdoc/>
    public void Dispose() => kept.Dispose();

    private sealed class CountedConnection(string connectionString, ProjectionReaders readers) : SqliteConnection(connectionString)
    {
        public override void Open()
        {
            if (State == System.Data.ConnectionState.Open)
                return;
            readers.Enter();
            try
            {
                base.Open();
            }
            catch
            {
                readers.Exit();
                throw;
            }
        }

        public override void Close()
        {
            if (State != System.Data.ConnectionState.Open)
                return;
            try
            {
                base.Close();
            }
            finally
            {
                readers.Exit();
            }
        }
    }

    /// <summary>No connection is open on the projection until this is disposed.</summary>
    internal sealed class Excluded(ProjectionReaders readers) : IDisposable
    {
        private int disposed;

        /// <inheritdoc/>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0)
                readers.EndExclusion();
        }
    }
}
