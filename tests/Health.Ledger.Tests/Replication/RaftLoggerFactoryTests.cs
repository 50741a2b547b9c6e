using System.Net.Sockets;
using Health.Ledger.Replication;
using Microsoft.Extensions.Logging;

namespace Health.Ledger.Tests.Replication;

/// <summary>What DotNext's Raft layer logs reaches the node's log through <see cref="RaftLoggerFactory"/>.</summary>
public sealed class RaftLoggerFactoryTests
{
    [Fact]
    public void A_connection_warning_keeps_its_reason_in_one_line_and_loses_the_stack_trace()
    {
        var (logger, written) = NewLogger();

        logger.LogWarning(Thrown(new IOException("Unable to write data to the transport connection: Broken pipe.")), "Unable to cancel all pending outbound requests");
        logger.LogWarning(Thrown(new SocketException((int)SocketError.ConnectionRefused)), "Member {EndPoint} is unavailable", "127.0.0.1:9082");

        Assert.Equal(
            [
                (LogLevel.Warning, "Unable to cancel all pending outbound requests (Unable to write data to the transport connection: Broken pipe.)", null),
                (LogLevel.Warning, $"Member 127.0.0.1:9082 is unavailable ({new SocketException((int)SocketError.ConnectionRefused).Message})", null),
            ],
            written.Select(w => (w.Level, w.Message, w.Exception)));
    }

    [Fact]
    public void Errors_keep_their_exception_and_a_refused_install_is_left_out()
    {
        var (logger, written) = NewLogger();
        var failure = Thrown(new IOException("WAL page 32 doesn't exist on the disk"));

        logger.LogError(failure, "Unexpected error");
        logger.LogWarning(Thrown(new SnapshotNotReadyException("still fetching")), "Member is unavailable");

        var only = Assert.Single(written);
        Assert.Equal((LogLevel.Error, "Unexpected error"), (only.Level, only.Message));
        Assert.Same(failure, only.Exception);
    }

    private static (ILogger Logger, List<(LogLevel Level, string Message, Exception? Exception)> Written) NewLogger()
    {
        var written = new List<(LogLevel, string, Exception?)>();
        var factory = new RaftLoggerFactory(new Collecting(written));
        return (factory.CreateLogger("DotNext.Net.Cluster.Consensus.Raft.RaftCluster"), written);
    }

    private static T Thrown<T>(T exception)
        where T : Exception
    {
        try
        {
            throw exception;
        }
        catch (T e)
        {
            return e;
        }
    }

    private sealed class Collecting(List<(LogLevel, string, Exception?)> written) : ILoggerFactory, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => written.Add((logLevel, formatter(state, exception), exception));
    }
}
