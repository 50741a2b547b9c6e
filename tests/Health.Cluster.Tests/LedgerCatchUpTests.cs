namespace Health.Cluster.Tests;

public sealed class LedgerCatchUpTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Follower_behind_a_compacted_log_catches_up_by_snapshot(bool wipeDataDirectory)
    {
        await RunCatchUpAsync(async (cluster, follower, token) =>
        {
            follower.Kill();
            if (wipeDataDirectory)
                Directory.Delete(follower.DataDirectory, recursive: true);
            await Task.CompletedTask;
        }, expectSnapshotInstall: true);
    }

    [Fact]
    public async Task Lost_projection_is_rebuilt_from_the_log_and_snapshots()
    {
        await RunCatchUpAsync(async (cluster, follower, token) =>
        {
            // Some entries first, so the follower has a log and snapshots of its own to rebuild from.
            var leader = await cluster.WaitForLeaderAsync(token);
            for (var i = 0; i < 120; i++)
                await cluster.AppendAsync(leader, $"early{i}", token);
            await cluster.WaitForConvergenceAsync(120, token);
            follower.Kill();
            foreach (var file in Directory.EnumerateFiles(Path.Combine(follower.DataDirectory, "ledger"), "ledger.db*"))
                File.Delete(file);
        }, expectSnapshotInstall: false);
    }

    private static async Task RunCatchUpAsync(Func<LedgerCluster, NodeProcess, CancellationToken, Task> disturb, bool expectSnapshotInstall)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var token = timeout.Token;
        using var cluster = new LedgerCluster(3, "--snapshot-interval", "50");
        try
        {
            var leader = await cluster.WaitForLeaderAsync(token);
            var follower = cluster.Nodes.First(n => n != leader);
            await disturb(cluster, follower, token);

            // One client at a time: every append is its own Raft entry, so the log passes several
            // snapshot intervals and the entries the follower misses are compacted away.
            for (var i = 0; i < 400; i++)
                await cluster.AppendAsync(leader, $"n{i}", token);

            var leaderStatus = (await cluster.TryStatusAsync(leader, token))!;
            Assert.True(Directory.EnumerateFiles(Path.Combine(leader.DataDirectory, "ledger", "snapshots")).Any(), "the leader took no snapshot");

            follower.Start();
            var statuses = await cluster.WaitForConvergenceAsync(leaderStatus.TreeSize, token);
            var onLeader = await cluster.ReadAllEntriesAsync(leader, statuses[0].TreeSize, token);
            var onFollower = await cluster.ReadAllEntriesAsync(follower, statuses[0].TreeSize, token);
            Assert.Equal(onLeader.Select(e => e.GetProperty("canonical").GetString()), onFollower.Select(e => e.GetProperty("canonical").GetString()));
            if (expectSnapshotInstall)
                Assert.Contains("Snapshot installed", follower.Output, StringComparison.Ordinal);
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(cluster.Diagnostics(), e);
        }
    }
}
