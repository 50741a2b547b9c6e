using System.CommandLine;
using Health.FhirGateway.Hosting;
using Health.FhirGateway.Records;

namespace Health.FhirGateway.Cli;

/// <summary><c>health-node rotate-master-key</c>: a new master key for a stopped node, without re-encrypting any record.</summary>
internal static class KeyCommands
{
    public static Command RotateMasterKey()
    {
        var data = new Option<DirectoryInfo>("--data") { Description = "The data directory of a stopped node.", Required = true };
        var command = new Command("rotate-master-key", "Make a new master key and re-wrap every patient's data key under it; record bodies are not touched.") { data };
        command.SetAction(result =>
        {
            var directory = result.GetValue(data)!;
            if (!File.Exists(Path.Combine(directory.FullName, "keys", "master.key")))
                throw new CommandLineFailure($"{directory.FullName} holds no keys/master.key.");
            try
            {
                // A running node holds the old key in memory and would wrap new data keys under it.
                using var stopped = NodeHost.LockDataDirectory(directory.FullName);
                var rewrapped = MasterKeyRotation.Rotate(directory.FullName);
                Console.WriteLine($"Master key rotated: {rewrapped} data keys re-wrapped; the previous key is kept as keys/master.key.previous until you delete it.");
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or Microsoft.Data.Sqlite.SqliteException)
            {
                throw new CommandLineFailure(e.Message);
            }

            return 0;
        });
        return command;
    }
}
