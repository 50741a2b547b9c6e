using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;

namespace Health.Cluster.Tests;

/// <summary>What an operator watches and types: readiness, metrics, status, and clear refusals.</summary>
public sealed class OperationsTests
{
    [Fact]
    public async Task Ready_node_exposes_metrics_and_status()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var token = timeout.Token;
        using var cluster = new LedgerCluster();
        var leader = await cluster.WaitForLeaderAsync(token);
        var index = await cluster.AppendAsync(leader, "observed", token);
        await cluster.WaitForConvergenceAsync(index, token);
        var node = leader;

        using (var ready = await cluster.Client.GetAsync(new Uri(node.HttpUrl, "/readyz"), token))
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);

        // FHIR requests are measured by route, whatever their answer.
        using (var request = new HttpRequestMessage(HttpMethod.Get, new Uri(node.HttpUrl, "/fhir/Patient/none")))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await cluster.MintTokenAsync("--role", "clinician", "--org", "clinic-o"));
            using var response = await cluster.Client.SendAsync(request, token);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        var metrics = await cluster.Client.GetStringAsync(new Uri(node.HttpUrl, "/metrics"), token);
        Assert.Contains("health_ledger_commit_index", metrics, StringComparison.Ordinal);
        Assert.Contains("health_ledger_applied_index", metrics, StringComparison.Ordinal);
        Assert.Contains("health_ledger_append_duration", metrics, StringComparison.Ordinal);
        Assert.Contains("http_server_request_duration", metrics, StringComparison.Ordinal);

        var json = await NodeProcess.RunToolAsync(["status", "--url", node.HttpUrl.ToString(), "--json"]);
        var status = JsonDocument.Parse(json).RootElement;
        Assert.Equal(node.NodeId, status.GetProperty("nodeId").GetString());
        Assert.Equal(3, status.GetProperty("members").GetArrayLength());
        var table = await NodeProcess.RunToolAsync(["status", "--url", node.HttpUrl.ToString()]);
        Assert.Contains("leader", table, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mistakes_are_refused_in_one_line_without_a_stack_trace()
    {
        using var occupied = new TcpListener(IPAddress.Loopback, 0);
        occupied.Start();
        var port = ((IPEndPoint)occupied.LocalEndpoint).Port;
        var data = Directory.CreateTempSubdirectory("ops-").FullName;
        try
        {
            string[][] mistakes =
            [
                ["run", "--node-id", "node1", "--http", $"http://127.0.0.1:{port}", "--data", data, "--member", $"node1=127.0.0.1:{NodeProcess.FreePort()}=http://127.0.0.1:{port}"],
                ["run", "--node-id", "node1", "--http", "not a url", "--data", data, "--member", "node1=127.0.0.1:1=http://127.0.0.1:2"],
                ["status", "--url", $"http://127.0.0.1:{NodeProcess.FreePort()}"],
                ["audit", "verify", Path.Combine(data, "missing"), "--ca", Path.Combine(data, "missing.pem")],
                ["certs", "node", "--ca", data, "--node-id", "node1", "--out", data],
            ];
            foreach (var arguments in mistakes)
            {
                var (exitCode, output, error) = await NodeProcess.RunToolForExitCodeAsync(arguments);
                Assert.True(exitCode is 1 or 2, $"{string.Join(' ', arguments)}: exit {exitCode}");
                Assert.DoesNotContain("   at ", output + error, StringComparison.Ordinal);
                Assert.Contains("health-node", error, StringComparison.Ordinal);
            }
        }
        finally
        {
            occupied.Stop();
            Directory.Delete(data, recursive: true);
        }
    }
}
