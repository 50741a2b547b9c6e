using System.CommandLine;
using System.Net.Sockets;
using Health.FhirGateway.Cli;

try
{
    return await NodeCommands.Create().Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }).ConfigureAwait(false);
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
