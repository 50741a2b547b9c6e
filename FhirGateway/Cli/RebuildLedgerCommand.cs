using System.CommandLine;
using Health.FhirGateway.Hosting;
using Health.Ledger.Replication;

namespace Health.FhirGateway.Cli;

/// <summary><c>health-node rebuild-ledger</c>: a stopped node's ledger set aside, to be rebuilt from its group.</summary>
internal static class RebuildLedgerCommand
{
    public static Command Create()
    {
        var data = new Option<DirectoryInfo>("--data") { Description = "The data directory of a stopped node.", Required = true };
        var command = new Command("rebuild-ledger", "Set aside a stopped node's ledger (projection, Raft log, snapshots) so that it rejoins empty and takes the group's; records and keys are kept.") { data };
        command.SetAction(result =>
        {
            var directory = result.GetValue(data)!;
            var ledger = Path.Combine(directory.FullName, "ledger");
            if (!Directory.Exists(ledger))
                throw new CommandLineFailure($"{directory.FullName} holds no ledger/ directory.");
            try
            {
                using var stopped = NodeHost.LockDataDirectory(directory.FullName);
                var aside = LedgerRebuild.SetAside(ledger);
                Console.WriteLine($"Ledger set aside in {aside}; start the node with `run` and it takes the group's ledger from the leader.");
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                throw new CommandLineFailure(e.Message);
            }

            return 0;
        });
        return command;
    }
}
