using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Health.Cluster.Tests.Fhir;

namespace Health.Cluster.Tests;

/// <summary>
/// An operator's whole routine through the built executable: init three nodes, run them from their
/// configuration, check status, load bundles, back up under concurrent writes, lose a node, restore
/// it on a fresh directory, and find the same ledger root, the same records and the same reads.
/// </summary>
public sealed class OperatorJourneyTests
{
    [SyntheaFact]
    public async Task Init_run_status_load_backup_restore_keeps_root_records_and_reads()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var cancel = timeout.Token;
        var root = Directory.CreateTempSubdirectory("journey-").FullName;
        var nodes = new List<NodeProcess>();
        var lastStatuses = string.Empty;
        try
        {
            var ca = Path.Combine(root, "ca");
            await NodeProcess.RunToolAsync(["certs", "ca", "--out", ca]);
            var ports = Enumerable.Range(1, 3).Select(_ => (Http: NodeProcess.FreePort(), Raft: NodeProcess.FreePort())).ToList();
            var members = ports.Select((p, i) => $"node{i + 1}=127.0.0.1:{p.Raft}=https://127.0.0.1:{p.Http}").ToList();
            string[] shared = ["--pseudonym-key", Path.Combine(root, "pseudonym.key"), "--dev-issuer-key", Path.Combine(root, "issuer.pem")];
            for (var i = 0; i < 3; i++)
            {
                var data = Path.Combine(root, $"node{i + 1}");
                await NodeProcess.RunToolAsync(["init", "--node-id", $"node{i + 1}", "--data", data, "--http", $"https://127.0.0.1:{ports[i].Http}",
                    .. members.SelectMany(m => new[] { "--member", m }), "--ca", ca, .. shared]);
                var node = new NodeProcess($"node{i + 1}", new Uri($"https://127.0.0.1:{ports[i].Http}"), data, Path.Combine(data, "node.json"));
                nodes.Add(node);
                node.Start();
            }

            var authority = Path.Combine(ca, "consortium-ca.pem");
            using var handler = LedgerCluster.TrustingHandler(authority);
            using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
            async Task<JsonElement?> StatusAsync(NodeProcess node)
            {
                try
                {
                    return await client.GetFromJsonAsync<JsonElement>(new Uri(node.HttpUrl, "/ledger/status"), cancel);
                }
                catch (HttpRequestException)
                {
                    return null;
                }
            }

            async Task<string> ConvergedRootAsync(long minimum)
            {
                while (true)
                {
                    var statuses = await Task.WhenAll(nodes.Select(StatusAsync));
                    lastStatuses = string.Join("\n", statuses.Select(s => s?.ToString() ?? "no answer"));
                    if (statuses.All(s => s is { } status && status.GetProperty("treeSize").GetInt64() >= minimum && status.GetProperty("appliedIndex").GetInt64() >= status.GetProperty("commitIndex").GetInt64())
                        && statuses.Select(s => s!.Value.GetProperty("root").GetString()).Distinct().Count() == 1
                        && statuses.Select(s => s!.Value.GetProperty("treeSize").GetInt64()).Distinct().Count() == 1)
                        return statuses[0]!.Value.GetProperty("root").GetString()!;
                    foreach (var node in nodes)
                        node.ThrowIfCrashed();
                    await Task.Delay(100, cancel);
                }
            }

            await ConvergedRootAsync(0);
            var status = JsonDocument.Parse(await NodeProcess.RunToolAsync(["status", "--url", nodes[0].HttpUrl.ToString(), "--cacert", authority, "--json"])).RootElement;
            Assert.Equal(3, status.GetProperty("members").GetArrayLength());

            var samples = Directory.CreateDirectory(Path.Combine(root, "samples")).FullName;
            foreach (var file in SyntheaData.OrganizationAndPractitionerBundles.Concat(SyntheaData.PatientBundles.Take(2)))
                File.Copy(file, Path.Combine(samples, Path.GetFileName(file)));
            var issuer = Path.Combine(root, "issuer.pem");
            string[] mint = ["token", "--key", issuer];
            await NodeProcess.RunToolAsync(["load", samples, "--url", nodes[0].HttpUrl.ToString(), "--token", await NodeProcess.RunToolAsync([.. mint, "--role", "operator"]), "--cacert", authority]);

            var loaded = JsonDocument.Parse(await NodeProcess.RunToolAsync(["status", "--url", nodes[0].HttpUrl.ToString(), "--cacert", authority, "--json"])).RootElement;
            Assert.Equal(2, loaded.GetProperty("readiness").GetProperty("patients").GetInt64());
            Assert.True(loaded.GetProperty("readiness").GetProperty("resources").GetInt64() > 100);

            var clinician = await NodeProcess.RunToolAsync([.. mint, "--role", "clinician", "--org", "node1"]);
            async Task<string> ReadAsync(string relative)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(nodes[0].HttpUrl, "/fhir/" + relative));
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", clinician);
                using var response = await client.SendAsync(request, cancel);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                return await response.Content.ReadAsStringAsync(cancel);
            }

            var patient = JsonDocument.Parse(await ReadAsync("Patient?_count=1")).RootElement.GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString()!;
            var readBefore = await ReadAsync($"Patient/{patient}");
            var observationsBefore = JsonDocument.Parse(await ReadAsync($"Observation?patient={patient}&_summary=count")).RootElement.GetProperty("total").GetInt64();

            // Back up node1 while appends keep arriving at node2.
            using var load = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            var writes = Task.Run(async () =>
            {
                for (var i = 0; i < 500 && !load.IsCancellationRequested; i++)
                {
                    using var append = await client.PostAsJsonAsync(new Uri(nodes[1].HttpUrl, "/ledger/entries"), new { kind = "OperatorNote", fields = new Dictionary<string, string> { ["note"] = $"write-{i}" } }, load.Token);
                    Assert.Equal(HttpStatusCode.Created, append.StatusCode);
                }
            }, load.Token);
            var backup = Path.Combine(root, "node1.zip");
            await NodeProcess.RunToolAsync(["backup", "--url", nodes[0].HttpUrl.ToString(), "--token", await NodeProcess.RunToolAsync([.. mint, "--role", "operator", "--org", "node1"]), "--out", backup, "--cacert", authority]);
            await load.CancelAsync();
            await writes.ContinueWith(_ => { }, TaskScheduler.Default);

            // node1 is lost; its configuration, certificate and master key were kept apart from its data.
            var node1 = nodes[0];
            var kept = Directory.CreateDirectory(Path.Combine(root, "kept")).FullName;
            File.Copy(Path.Combine(node1.DataDirectory, "node.json"), Path.Combine(kept, "node.json"));
            File.Copy(Path.Combine(node1.DataDirectory, "keys", "master.key"), Path.Combine(kept, "master.key"));
            CopyFolder(Path.Combine(node1.DataDirectory, "certs"), Path.Combine(kept, "certs"));
            node1.Kill();
            Directory.Delete(node1.DataDirectory, recursive: true);

            await NodeProcess.RunToolAsync(["restore", backup, "--data", node1.DataDirectory, "--master-key", Path.Combine(kept, "master.key")]);
            File.Copy(Path.Combine(kept, "node.json"), Path.Combine(node1.DataDirectory, "node.json"));
            CopyFolder(Path.Combine(kept, "certs"), Path.Combine(node1.DataDirectory, "certs"));
            node1.Start();

            var beforeRoot = await ConvergedRootAsync(0);
            Assert.False(string.IsNullOrEmpty(beforeRoot));
            Assert.Equal(readBefore, await ReadAsync($"Patient/{patient}"));
            Assert.Equal(observationsBefore, JsonDocument.Parse(await ReadAsync($"Observation?patient={patient}&_summary=count")).RootElement.GetProperty("total").GetInt64());
        }
        catch (OperationCanceledException e) when (timeout.IsCancellationRequested)
        {
            throw new TimeoutException($"The journey did not finish in time. Last statuses:\n{lastStatuses}\n{string.Join("\n", nodes.Select(n => $"--- {n.NodeId} ---\n{n.Output}"))}", e);
        }
        finally
        {
            foreach (var node in nodes)
                node.Dispose();
            Directory.Delete(root, recursive: true);
        }
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }
}
