using System.CommandLine;
using System.Net.Sockets;
using Health.FhirGateway.Cli;

try
{
    // Ctrl+C or SIGTERM cancels the verb, which then stops its nodes: the host drains requests for
    // up to 10 s and each step of a node's stop has 10 s (NodeHost, LedgerNode), so a stop gets that
    // long before the command line ends the process anyway (its default is 2 s).
    var invocation = new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = TimeSpan.FromSeconds(45) };
    return await NodeCommands.Create().Parse(args).InvokeAsync(invocation).ConfigureAwait(false);
}
catch (CommandLineFailure e)
{
    await Console.Error.WriteLineAsync($"health-node: {e.Message}").ConfigureAwait(false);
    return 2;
}
catch (IOException e) when (e.GetBaseException() is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse })
{
    await Console.Error.WriteLineAsync($"health-node: a port is already in use ({e.Message}).").ConfigureAwait(false);
    return 2;
}
catch (Exception e) when (e is not OperationCanceledException)
{
    // Whatever stopped the node or the command is said in one line; the node's log has the rest.
    await Console.Error.WriteLineAsync($"health-node: {e.GetBaseException().Message}").ConfigureAwait(false);
    return 1;
}
