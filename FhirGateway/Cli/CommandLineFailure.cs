namespace Health.FhirGateway.Cli;

/// <summary>A mistake in how the command was called or the machine it runs on; printed as one line, exit code 2.</summary>
internal sealed class CommandLineFailure(string message) : Exception(message);
