using System.CommandLine;
using System.Net.Http.Headers;
using Health.FhirGateway.Operations;

namespace Health.FhirGateway.Cli;

/// <summary><c>health-node backup</c> (online, from a running node) and <c>health-node restore</c> (into an empty data directory).</summary>
internal static class BackupCommands
{
    public static IEnumerable<Command> Create() => [BackupCommand(), RestoreCommand()];

    private static Command BackupCommand()
    {
        var url = new Option<string>("--url") { Description = "The node, for example https://127.0.0.1:8081.", Required = true };
        var token = new Option<string>("--token") { Description = "An operator token of that node (org claim = its node id).", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "The backup file to write.", Required = true };
        var authority = new Option<FileInfo>("--cacert") { Description = "The consortium CA, to trust the node's HTTPS certificate." };
        var command = new Command("backup", "Take an online, consistent backup of a running node (ledger and records, records still encrypted, no keys).") { url, token, output, authority };
        command.SetAction(async (result, cancel) =>
        {
            var node = CliHttp.NodeUrl(result.GetValue(url));
            using var handler = CliHttp.Handler(result.GetValue(authority));

            using var client = new HttpClient(handler) { Timeout = TimeSpan.FromMinutes(30) };
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(node, "/admin/backup"));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", result.GetValue(token));
            HttpResponseMessage response;
            try
            {
                response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel).ConfigureAwait(false);
            }
            catch (HttpRequestException e)
            {
                throw new CommandLineFailure($"{node} did not answer: {e.Message}");
            }

            using (response)
            {
                if (!response.IsSuccessStatusCode)
                    throw new CommandLineFailure($"The node refused the backup: {await CliHttp.DescribeRefusalAsync(response, cancel).ConfigureAwait(false)}");
                var target = result.GetValue(output)!;
                var partial = target.FullName + ".partial";
                var file = File.Create(partial);
                await using (file.ConfigureAwait(false))
                    await response.Content.CopyToAsync(file, cancel).ConfigureAwait(false);
                File.Move(partial, target.FullName, overwrite: true);
                Console.WriteLine($"Backup written to {target.FullName} ({new FileInfo(target.FullName).Length / 1024} KiB)");
            }

            return 0;
        });
        return command;
    }

    private static Command RestoreCommand()
    {
        var file = new Argument<FileInfo>("file") { Description = "A backup made by `health-node backup`." };
        var data = new Option<DirectoryInfo>("--data") { Description = "An empty data directory to restore into.", Required = true };
        var masterKey = new Option<FileInfo>("--master-key") { Description = "The node's master key file (base64); HEALTH_MASTER_KEY may give it instead." };
        var newGroup = new Option<bool>("--new-group")
        {
            Description = "Every member of the group is restored from this same backup and starts a new Raft log. "
                + "Without it the node rejoins its running group and votes again once it has caught up.",
        };
        var command = new Command("restore", "Restore a backup into an empty data directory; then start the node on it with `run`.") { file, data, masterKey, newGroup };
        command.SetAction(result =>
        {
            var backup = result.GetValue(file)!;
            if (!backup.Exists)
                throw new CommandLineFailure($"{backup.FullName} does not exist.");
            byte[] key;
            try
            {
                key = Environment.GetEnvironmentVariable("HEALTH_MASTER_KEY") is { Length: > 0 } fromEnvironment
                    ? Convert.FromBase64String(fromEnvironment)
                    : result.GetValue(masterKey) is { Exists: true } keyFile
                        ? Convert.FromBase64String(File.ReadAllText(keyFile.FullName).Trim())
                        : throw new CommandLineFailure("Give the node's master key with --master-key or HEALTH_MASTER_KEY.");
            }
            catch (FormatException)
            {
                throw new CommandLineFailure("The master key is not base64.");
            }

            try
            {
                var manifest = NodeBackup.Restore(backup.FullName, result.GetValue(data)!.FullName, key, result.GetValue(newGroup));
                Console.WriteLine($"Restored {manifest.TreeSize} ledger entries and the records of {manifest.Node} (taken {manifest.Taken:u}) into {result.GetValue(data)!.FullName}");
            }
            catch (Exception e) when (e is InvalidOperationException or InvalidDataException or IOException)
            {
                throw new CommandLineFailure(e.Message);
            }

            return 0;
        });
        return command;
    }
}
