using System.CommandLine;
using System.Text.Json;
using Spectre.Console;

namespace Health.FhirGateway.Cli;

/// <summary><c>health-node status</c>: a running node's role, term, leader, indices, members and checkpoint.</summary>
internal static class StatusCommand
{
    public static Command Create()
    {
        var url = new Option<string>("--url") { Description = "The node, for example https://127.0.0.1:8081.", Required = true };
        var authority = new Option<FileInfo>("--cacert") { Description = "The consortium CA, to trust the node's HTTPS certificate." };
        var json = new Option<bool>("--json") { Description = "Print the status as JSON." };
        var command = new Command("status", "Show a running node's ledger status.") { url, authority, json };
        command.SetAction(async (result, cancel) =>
        {
            var node = CliHttp.NodeUrl(result.GetValue(url));
            using var handler = CliHttp.Handler(result.GetValue(authority));

            using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
            string body;
            try
            {
                body = await client.GetStringAsync(new Uri(node, "/ledger/status"), cancel).ConfigureAwait(false);
            }
            catch (HttpRequestException e)
            {
                throw new CommandLineFailure($"{node} did not answer: {e.Message}");
            }

            // Readiness adds the record counts; a node that is not ready still has a ledger status.
            using var readiness = await client.GetAsync(new Uri(node, "/readyz"), cancel).ConfigureAwait(false);
            var ready = JsonDocument.Parse(await readiness.Content.ReadAsStringAsync(cancel).ConfigureAwait(false)).RootElement;
            if (result.GetValue(json))
            {
                var combined = System.Text.Json.Nodes.JsonNode.Parse(body)!;
                combined["readiness"] = System.Text.Json.Nodes.JsonNode.Parse(ready.GetRawText());
                Console.WriteLine(combined.ToJsonString());
                return 0;
            }

            var status = JsonDocument.Parse(body).RootElement;
            var table = new Table().AddColumns("node", "role", "term", "leader", "commit", "applied", "tree size", "last checkpoint", "ready", "resources", "patients");
            table.AddRow(Text(status, "nodeId"), Text(status, "role"), Text(status, "term"), Text(status, "leaderId"), Text(status, "commitIndex"),
                Text(status, "appliedIndex"), Text(status, "treeSize"), Text(status, "latestCheckpointIndex"), Text(ready, "status"), Text(ready, "resources"), Text(ready, "patients"));
            AnsiConsole.Write(table);
            if (status.TryGetProperty("recovering", out var recovering) && recovering.ValueKind == JsonValueKind.True)
                AnsiConsole.MarkupLine("This node lost its Raft log and is catching up: it neither votes nor stands for election until then.");
            var members = new Table().AddColumns("member", "raft", "http", "state", "leader");
            foreach (var member in status.GetProperty("members").EnumerateArray())
                members.AddRow(Text(member, "nodeId"), Text(member, "raftEndPoint"), Text(member, "httpUrl"), Text(member, "status"), Text(member, "isLeader"));
            AnsiConsole.Write(members);
            return 0;
        });
        return command;
    }

    private static string Text(JsonElement element, string property)
        => element.TryGetProperty(property, out var value) ? Markup.Escape(value.ValueKind == JsonValueKind.Null ? "-" : value.ToString()) : "-";
}
