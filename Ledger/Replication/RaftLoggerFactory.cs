using Microsoft.Extensions.Logging;

namespace Health.Ledger.Replication;

/// <summary>
/// The logger factory DotNext's Raft layer writes through. A follower refuses the leader's install
/// requests while it still fetches the snapshot (<see cref="SnapshotNotReadyException"/>); that is
/// expected and logged by the fetch itself, so DotNext's report of each refused request as a failed
/// one, stack trace included, is left out. Warnings about connections (a member down, a connection
/// its peer closed while the group stops) keep one line with the reason and lose the stack trace,
/// which says nothing an operator can act on. Everything else passes unchanged.
/// </summary>
internal sealed class RaftLoggerFactory(ILoggerFactory inner) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) => new Filtering(inner.CreateLogger(categoryName));

    public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

    // The factory it wraps belongs to the host.
    public void Dispose()
    {
    }

    private sealed class Filtering(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull
            => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (exception is SnapshotNotReadyException)
                return;
            if (exception is IOException or System.Net.Sockets.SocketException && logLevel < LogLevel.Error)
                inner.Log(logLevel, eventId, state, null, (s, _) => $"{formatter(s, exception)} ({exception.Message})");
            else
                inner.Log(logLevel, eventId, state, exception, formatter);
        }
    }
}
