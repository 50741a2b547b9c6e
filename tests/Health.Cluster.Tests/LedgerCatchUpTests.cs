using System.Net;
using System.Net.Http.Json;

namespace Health.Cluster.Tests;

public sealed class LedgerCatchUpTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Follower_behind_a_compacted_log_catches_up_by_snapshot(bool wipeDataDirectory)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var token = timeout.Token;
        using var cluster = new LedgerCluster(3, "--snapshot-interval", "50");
        try
        {
            var leader = await cluster.WaitForLeaderAsync(token);
            var follower = cluster.Nodes.First(n => n != leader);
            follower.Kill();
            if (wipeDataDirectory)
                Directory.Delete(follower.DataDirectory, recursive: true);

            // One client at a time: every append is its own Raft entry, so the log passes several
            // snapshot intervals and the entries the follower misses are compacted away.
            for (var i = 0; i < 400; i++)
            {
                using var response = await cluster.Client.PostAsJsonAsync(new Uri(leader.HttpUrl, "/ledger/entries"),
                    new { kind = "NodeRemoved", fields = new Dictionary<string, string> { ["nodeId"] = $"n{i}" } }, token);
                Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            }

            var leaderStatus = (await cluster.TryStatusAsync(leader, token))!;
            Assert.True(Directory.EnumerateFiles(Path.Combine(leader.DataDirectory, "ledger", "snapshots")).Any(), "the leader took no snapshot");

            follower.Start();
            var statuses = await cluster.WaitForConvergenceAsync(leaderStatus.TreeSize, token);
            var onLeader = await cluster.ReadAllEntriesAsync(leader, statuses[0].TreeSize, token);
            var onFollower = await cluster.ReadAllEntriesAsync(follower, statuses[0].TreeSize, token);
            Assert.Equal(onLeader.Select(e => e.GetProperty("canonical").GetString()), onFollower.Select(e => e.GetProperty("canonical").GetString()));
            Assert.Contains("Snapshot installed", follower.Output, StringComparison.Ordinal);
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(cluster.Diagnostics(), e);
        }
    }
}
