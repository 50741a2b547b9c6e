namespace Health.FhirGateway.Hosting;

/// <summary>
/// Leaves Ctrl+C and SIGTERM to the command line, which cancels the running verb; the verb then
/// stops its hosts. The default console lifetime would stop each host on its own, leaving the
/// demo's other nodes and the verb itself running.
/// </summary>
internal sealed class CommandLineLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
