using Health.FhirGateway.Hosting;

namespace Health.FhirGateway.Cli;

/// <summary>The demo: three provider nodes in this process, on loopback, until Ctrl+C.</summary>
internal static class Demo
{
    public static async Task<int> RunAsync(DirectoryInfo data, int httpBasePort, int raftBasePort, CancellationToken token)
    {
        var members = NodeSettings.LoopbackTrio(httpBasePort, raftBasePort);
        var apps = new List<WebApplication>();
        try
        {
            foreach (var member in members)
            {
                var settings = new NodeSettings(member.NodeId, member.HttpUrl, Path.Combine(data.FullName, member.NodeId), members)
                {
                    PseudonymKeyFile = Path.Combine(data.FullName, "consortium-pseudonym.key"),
                };
                apps.Add(await NodeHost.StartAsync(settings, token, l => l.SetMinimumLevel(LogLevel.Warning)).ConfigureAwait(false));
            }

            var nodes = string.Join(Environment.NewLine, members.Select(m => $"  {m.NodeId}: {m.HttpUrl} (Raft {m.RaftEndPoint})"));
            var first = members[0].HttpUrl.ToString().TrimEnd('/');
            Console.WriteLine($$$"""

                Health ledger demo: three provider nodes on loopback (data in {{{data.FullName}}})
                {{{nodes}}}

                Try:
                  curl -s {{{first}}}/ledger/status
                  curl -s -X POST {{{first}}}/ledger/entries -H 'Content-Type: application/json' \
                       -d '{"kind":"NodeAdmitted","fields":{"nodeId":"node4","organization":"demo-clinic","certificateSha256":"00"}}'
                  curl -s {{{first}}}/ledger/entries/1
                  curl -s {{{first}}}/ledger/entries/1/receipt
                  curl -s {{{first}}}/ledger/checkpoints/latest

                Press Ctrl+C to stop.
                """);
            await Task.Delay(Timeout.Infinite, token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return 0;
        }
        finally
        {
            foreach (var app in apps)
            {
                await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
                await app.DisposeAsync().ConfigureAwait(false);
            }

            Console.WriteLine("All nodes stopped.");
        }
    }
}
