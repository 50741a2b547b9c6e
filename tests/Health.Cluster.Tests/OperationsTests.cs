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
            // A setting out of range in the configuration file is refused as on the command line.
            var tooShortElections = Path.Combine(data, "node.json");
            await File.WriteAllTextAsync(tooShortElections,
                $$"""{"nodeId":"node1","http":"http://127.0.0.1:2","data":"{{Path.Combine(data, "node1").Replace("\\", "/", StringComparison.Ordinal)}}","members":["node1=127.0.0.1:1=http://127.0.0.1:2"],"electionTimeout":20}""");
            string[][] mistakes =
            [
                ["run", "--node-id", "node1", "--http", $"http://127.0.0.1:{port}", "--data", data, "--member", $"node1=127.0.0.1:{NodeProcess.FreePort()}=http://127.0.0.1:{port}"],
                ["run", "--node-id", "node1", "--http", "not a url", "--data", data, "--member", "node1=127.0.0.1:1=http://127.0.0.1:2"],
                ["run", "--node-id", "node1", "--http", "http://127.0.0.1:2", "--data", data, "--member", "node1=127.0.0.1:1=http://127.0.0.1:2", "--election-timeout", "20"],
                ["run", "--config", tooShortElections],
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

/// <summary>A node made with <c>init</c> runs from its configuration file, with the environment overriding it.</summary>
public sealed class NodeConfigurationTests
{
    [Fact]
    public async Task Initialised_node_runs_from_its_config_and_environment_overrides_it()
    {
        var root = Directory.CreateTempSubdirectory("init-").FullName;
        var (configured, actual, raft) = (NodeProcess.FreePort(), NodeProcess.FreePort(), NodeProcess.FreePort());
        try
        {
            var data = Path.Combine(root, "node1");
            await NodeProcess.RunToolAsync(["certs", "ca", "--out", Path.Combine(root, "ca")]);
            var initialised = await NodeProcess.RunToolAsync(["init", "--node-id", "node1", "--data", data, "--http", $"https://127.0.0.1:{configured}",
                "--member", $"node1=127.0.0.1:{raft}=https://127.0.0.1:{configured}", "--ca", Path.Combine(root, "ca")]);
            Assert.Contains("run --config", initialised, StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(data, "keys", "master.key")));
            var config = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(data, "node.json"))).RootElement;
            Assert.EndsWith("node1.pem", config.GetProperty("tlsCert").GetString(), StringComparison.Ordinal);

            var (exitCode, _, error) = await NodeProcess.RunToolForExitCodeAsync(["init", "--node-id", "node1", "--data", data, "--http", "https://127.0.0.1:1", "--member", "node1=127.0.0.1:2=https://127.0.0.1:1"]);
            Assert.Equal(2, exitCode);
            Assert.Contains("not empty", error, StringComparison.Ordinal);

            var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add(NodeProcess.Executable);
            foreach (var argument in new[] { "run", "--config", Path.Combine(data, "node.json") })
                start.ArgumentList.Add(argument);
            start.Environment["HEALTH_HTTP"] = $"https://127.0.0.1:{actual}";
            using var process = System.Diagnostics.Process.Start(start)!;
            try
            {
                using var handler = new SocketsHttpHandler();
                handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
                using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(5) };
                var healthy = false;
                for (var attempt = 0; attempt < 100 && !healthy && !process.HasExited; attempt++)
                {
                    try
                    {
                        healthy = (await client.GetAsync(new Uri($"https://127.0.0.1:{actual}/healthz"))).IsSuccessStatusCode;
                    }
                    catch (HttpRequestException)
                    {
                        await Task.Delay(100);
                    }
                }

                Assert.True(healthy, "the node did not come up on the port the environment gave");
            }
            finally
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}

/// <summary>One client cannot flood a node's FHIR API; other clients and the members are not held back.</summary>
public sealed class RateLimitTests
{
    [Fact]
    public async Task A_client_over_its_rate_gets_429_with_an_OperationOutcome_and_others_go_on()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var token = timeout.Token;
        using var cluster = new LedgerCluster(3, "--rate-limit", "20");
        await cluster.WaitForLeaderAsync(token);
        var node = cluster.Nodes[0];
        var greedy = await cluster.MintTokenAsync("--role", "clinician", "--org", "node1", "--subject", "greedy");
        var other = await cluster.MintTokenAsync("--role", "clinician", "--org", "node1", "--subject", "other");
        async Task<HttpResponseMessage> SearchAsync(string bearer)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(node.HttpUrl, "/fhir/Organization?_count=1"));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
            return await cluster.Client.SendAsync(request, token);
        }

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 60; i++)
        {
            var response = await SearchAsync(greedy);
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
                refused ??= response;
            else
                response.Dispose();
        }

        Assert.Contains(HttpStatusCode.OK, statuses);
        Assert.NotNull(refused);
        using (refused)
        {
            Assert.Equal("1", refused.Headers.GetValues("Retry-After").Single());
            Assert.Contains("\"throttled\"", await refused.Content.ReadAsStringAsync(token), StringComparison.Ordinal);
        }

        using (var fine = await SearchAsync(other))
            Assert.Equal(HttpStatusCode.OK, fine.StatusCode);
        var index = await cluster.AppendAsync(node, "members are not limited", token);
        await cluster.WaitForConvergenceAsync(index, token);
    }
}
