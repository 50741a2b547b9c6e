using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Health.Cluster.Tests.Fhir;

namespace Health.Cluster.Tests;

/// <summary>A node backed up under load, lost, restored from the backup into an empty directory, and rejoining its group.</summary>
public sealed class BackupTests
{
    [SyntheaFact]
    public async Task Node_restored_from_an_online_backup_rejoins_and_serves_its_records()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var token = timeout.Token;
        using var cluster = new LedgerCluster();
        try
        {
            await cluster.WaitForLeaderAsync(token);
            var node = cluster.Nodes[0];
            using (var ingest = new HttpRequestMessage(HttpMethod.Post, new Uri(node.HttpUrl, "/fhir")) { Content = new ByteArrayContent(File.ReadAllBytes(SyntheaData.PatientBundles.First())) })
            {
                ingest.Content.Headers.ContentType = new MediaTypeHeaderValue("application/fhir+json");
                ingest.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await cluster.MintTokenAsync("--role", "operator"));
                using var ingested = await cluster.Client.SendAsync(ingest, token);
                Assert.Equal(HttpStatusCode.OK, ingested.StatusCode);
            }

            // The backup is taken while appends keep arriving.
            using var load = CancellationTokenSource.CreateLinkedTokenSource(token);
            var appends = Task.Run(async () =>
            {
                for (var i = 0; i < 2000 && !load.IsCancellationRequested; i++)
                    await cluster.AppendAsync(cluster.Nodes[1], $"during-backup-{i}", load.Token);
            }, load.Token);
            var backup = Path.Combine(cluster.Root, "node1.backup.zip");
            var written = await NodeProcess.RunToolAsync(["backup", "--url", node.HttpUrl.ToString(), "--token", await cluster.MintTokenAsync("--role", "operator", "--org", node.NodeId), "--out", backup]);
            Assert.Contains("Backup written", written, StringComparison.Ordinal);
            await load.CancelAsync();
            await appends.ContinueWith(_ => { }, TaskScheduler.Default);

            // node1 is lost: killed, its data directory gone; only the backup and its master key remain.
            var masterKey = Path.Combine(cluster.Root, "node1-master.key");
            File.Copy(Path.Combine(node.DataDirectory, "keys", "master.key"), masterKey);
            node.Kill();
            Directory.Delete(node.DataDirectory, recursive: true);
            var index = await cluster.AppendAsync(cluster.Nodes[1], "while-node1-is-gone", token);

            var (wrongKeyExit, _, wrongKeyError) = await NodeProcess.RunToolForExitCodeAsync(["restore", backup, "--data", node.DataDirectory, "--master-key", Path.Combine(cluster.Root, "pseudonym.key")]);
            Assert.Equal(2, wrongKeyExit);
            Assert.Contains("master key", wrongKeyError, StringComparison.Ordinal);
            Directory.Delete(node.DataDirectory, recursive: true);
            var restored = await NodeProcess.RunToolAsync(["restore", backup, "--data", node.DataDirectory, "--master-key", masterKey]);
            Assert.Contains("Restored", restored, StringComparison.Ordinal);
            var (notEmptyExit, _, _) = await NodeProcess.RunToolForExitCodeAsync(["restore", backup, "--data", node.DataDirectory, "--master-key", masterKey]);
            Assert.Equal(2, notEmptyExit);

            node.Start();
            var after = await cluster.AppendAsync(cluster.Nodes[2], "after-restore", token);
            await cluster.WaitForConvergenceAsync(long.Max(index, after), token);

            var clinician = await cluster.MintTokenAsync("--role", "clinician", "--org", node.NodeId);
            using var search = new HttpRequestMessage(HttpMethod.Get, new Uri(node.HttpUrl, "/fhir/Patient?_count=1"));
            search.Headers.Authorization = new AuthenticationHeaderValue("Bearer", clinician);
            using var found = await cluster.Client.SendAsync(search, token);
            Assert.Equal(HttpStatusCode.OK, found.StatusCode);
            var bundle = await found.Content.ReadFromJsonAsync<JsonElement>(token);
            Assert.Equal(1, bundle.GetProperty("total").GetInt32());
            Assert.Equal("Patient", bundle.GetProperty("entry")[0].GetProperty("resource").GetProperty("resourceType").GetString());
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(cluster.Diagnostics(), e);
        }
    }
}

/// <summary>A stopped node's master key is replaced; its records stay readable under the new key only.</summary>
public sealed class MasterKeyRotationTests
{
    [SyntheaFact]
    public async Task Rotated_master_key_opens_every_record_and_the_old_one_no_longer_does()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var token = timeout.Token;
        using var cluster = new LedgerCluster(size: 1);
        await cluster.WaitForLeaderAsync(token);
        var node = cluster.Nodes[0];
        var patient = await cluster.IngestFirstPatientAsync(node, token);

        var keyFile = Path.Combine(node.DataDirectory, "keys", "master.key");
        var before = await File.ReadAllTextAsync(keyFile, token);
        var (refusedCode, _, refusal) = await NodeProcess.RunToolForExitCodeAsync(["rotate-master-key", "--data", node.DataDirectory]);
        Assert.True(refusedCode != 0 && refusal.Contains("in use", StringComparison.Ordinal), $"a running node's master key was rotated ({refusedCode}: {refusal})");
        Assert.Equal(before, await File.ReadAllTextAsync(keyFile, token));
        Assert.False(File.Exists(keyFile + ".next"), "a next key was written beside a running node's");
        node.Kill();
        var rotated = await NodeProcess.RunToolAsync(["rotate-master-key", "--data", node.DataDirectory]);
        Assert.Contains("data keys re-wrapped", rotated, StringComparison.Ordinal);
        Assert.NotEqual(before, await File.ReadAllTextAsync(keyFile, token));
        Assert.Equal(before, await File.ReadAllTextAsync(keyFile + ".previous", token));

        var backupless = Path.Combine(cluster.Root, "old-key-check");
        node.Start();
        await cluster.WaitForLeaderAsync(token);
        var clinician = await cluster.MintTokenAsync("--role", "clinician", "--org", node.NodeId);
        // A search by patient matches index tokens, whose key the rotation must have kept.
        using var found = await cluster.SendFhirAsync(HttpMethod.Get, node, $"Observation?patient={patient}&_count=5", clinician, null, token);
        Assert.Equal(HttpStatusCode.OK, found.StatusCode);
        Assert.Equal(5, (await found.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("entry").GetArrayLength());

        // A restore with the old key is refused: the data keys are wrapped under the new one now.
        var backup = Path.Combine(cluster.Root, "after-rotation.zip");
        await NodeProcess.RunToolAsync(["backup", "--url", node.HttpUrl.ToString(), "--token", await cluster.MintTokenAsync("--role", "operator", "--org", node.NodeId), "--out", backup]);
        await File.WriteAllTextAsync(backupless + ".key", before, token);
        var (exitCode, _, error) = await NodeProcess.RunToolForExitCodeAsync(["restore", backup, "--data", backupless, "--master-key", backupless + ".key"]);
        Assert.Equal(2, exitCode);
        Assert.Contains("master key", error, StringComparison.Ordinal);
    }
}
