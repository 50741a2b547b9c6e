using System.Net;

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
    public async Task A_follower_of_a_mutual_TLS_group_fetches_the_snapshot_with_its_node_certificate_and_strangers_are_refused()
    {
        await RunCatchUpAsync(async (cluster, follower, token) =>
        {
            follower.Kill();
            Directory.Delete(follower.DataDirectory, recursive: true);
            await Task.CompletedTask;
        }, expectSnapshotInstall: true, tls: true, checkLeader: async (cluster, leader, token) =>
        {
            // The leader's snapshot (a mark: its name without ".mark"), asked for without a member's certificate.
            var newest = Directory.EnumerateFiles(Path.Combine(leader.DataDirectory, "ledger", "snapshots"), "*-*").Select(Path.GetFileNameWithoutExtension).Max()!;
            using var refused = await cluster.Client.GetAsync(new Uri(leader.HttpUrl, $"/internal/ledger/snapshots/{newest}"), token);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        });
    }

    [Fact]
    public async Task A_ledger_set_aside_with_rebuild_ledger_is_taken_again_from_the_group()
    {
        await RunCatchUpAsync(async (cluster, follower, token) =>
        {
            await AppendEarlyEntriesAsync(cluster, token);
            var (exitCode, _, error) = await NodeProcess.RunToolForExitCodeAsync(["rebuild-ledger", "--data", follower.DataDirectory]);
            Assert.True(exitCode != 0 && error.Contains("in use", StringComparison.Ordinal), $"a running node's ledger was set aside ({exitCode}: {error})");

            follower.Stop();
            var said = await NodeProcess.RunToolAsync(["rebuild-ledger", "--data", follower.DataDirectory]);
            Assert.Contains("Ledger set aside", said, StringComparison.Ordinal);
            var ledger = Path.Combine(follower.DataDirectory, "ledger");
            Assert.False(File.Exists(Path.Combine(ledger, "ledger.db")), "the projection was not set aside");
            Assert.False(Directory.Exists(Path.Combine(ledger, "snapshots")), "the snapshots were not set aside");
            Assert.True(File.Exists(Path.Combine(ledger, "raft", "state")), "the term and vote were not kept");
            Assert.True(File.Exists(Path.Combine(ledger, "node-signing-key.pem")), "the signing key was not kept");
        }, expectSnapshotInstall: true);
    }

    // The follower's own snapshots are marks: without its projection, nothing on it holds the
    // entries its log dropped, so it takes the ledger again from the group.
    [Fact]
    public async Task Lost_projection_is_taken_again_from_the_group()
    {
        await RunCatchUpAsync(async (cluster, follower, token) =>
        {
            await AppendEarlyEntriesAsync(cluster, token);
            follower.Kill();
            foreach (var file in Directory.EnumerateFiles(Path.Combine(follower.DataDirectory, "ledger"), "ledger.db*"))
                File.Delete(file);
        }, expectSnapshotInstall: true, expectWarning: "this node takes the ledger again from the group");
    }

    [Fact]
    public async Task Torn_last_write_in_the_log_is_detected_and_recovered_from_the_group()
    {
        await RunCatchUpAsync(async (cluster, follower, token) =>
        {
            await AppendEarlyEntriesAsync(cluster, token);
            follower.Kill();

            // Cut the newest log chunk in the middle of its last entry, as a crash mid-write would.
            var chunk = new DirectoryInfo(Path.Combine(follower.DataDirectory, "ledger", "raft", "data")).EnumerateFiles()
                .OrderByDescending(f => f.LastWriteTimeUtc).First();
            var bytes = File.ReadAllBytes(chunk.FullName);
            var end = Array.FindLastIndex(bytes, b => b != 0);
            Assert.True(end > 16, "the newest log chunk holds no entries");
            using (var stream = new FileStream(chunk.FullName, FileMode.Open))
                stream.SetLength(end - 8);
        }, expectSnapshotInstall: false, expectWarning: "The Raft log failed its integrity check");
    }

    [Fact]
    public async Task Corrupted_projection_is_set_aside_and_taken_again_from_the_group()
    {
        await RunCatchUpAsync(async (cluster, follower, token) =>
        {
            await AppendEarlyEntriesAsync(cluster, token);

            // A clean stop folds SQLite's write-ahead log into the file; then damage its middle.
            follower.Stop();
            var database = Path.Combine(follower.DataDirectory, "ledger", "ledger.db");
            var length = new FileInfo(database).Length;
            using var stream = new FileStream(database, FileMode.Open) { Position = length / 2 };
            stream.Write(Enumerable.Repeat((byte)0xA5, 16384).ToArray());
        }, expectSnapshotInstall: true, expectWarning: "The ledger projection failed SQLite's integrity check");
    }

    // Some entries first, so the follower has a log and snapshots of its own.
    private static async Task AppendEarlyEntriesAsync(LedgerCluster cluster, CancellationToken token)
    {
        var leader = await cluster.WaitForLeaderAsync(token);
        for (var i = 0; i < 120; i++)
            await cluster.AppendAsync(leader, $"early{i}", token);
        await cluster.WaitForConvergenceAsync(120, token);
    }

    private static async Task RunCatchUpAsync(Func<LedgerCluster, NodeProcess, CancellationToken, Task> disturb, bool expectSnapshotInstall, string? expectWarning = null,
        bool tls = false, Func<LedgerCluster, NodeProcess, CancellationToken, Task>? checkLeader = null)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var token = timeout.Token;
        using var cluster = tls ? LedgerCluster.WithTls(3, "--snapshot-interval", "50") : new LedgerCluster(3, "--snapshot-interval", "50");
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
            Assert.True(Directory.EnumerateFiles(Path.Combine(leader.DataDirectory, "ledger", "snapshots"), "*.mark").Any(), "the leader marked no snapshot");
            if (checkLeader is not null)
                await checkLeader(cluster, leader, token);

            follower.Start();
            var statuses = await cluster.WaitForConvergenceAsync(leaderStatus.TreeSize, token);
            var onLeader = await cluster.ReadAllEntriesAsync(leader, statuses[0].TreeSize, token);
            var onFollower = await cluster.ReadAllEntriesAsync(follower, statuses[0].TreeSize, token);
            Assert.Equal(onLeader.Select(e => e.GetProperty("canonical").GetString()), onFollower.Select(e => e.GetProperty("canonical").GetString()));
            if (expectSnapshotInstall)
            {
                // Through Raft only a reference; the file itself comes over HTTP from the leader.
                Assert.Contains($"fetched from {leader.NodeId} and prepared", follower.Output, StringComparison.Ordinal);
                Assert.Contains("Snapshot installed", follower.Output, StringComparison.Ordinal);
                Assert.Empty(Directory.EnumerateFiles(Path.Combine(follower.DataDirectory, "ledger", "snapshots"), "*.tmp*"));
            }
            if (expectWarning is not null)
                Assert.Contains(expectWarning, follower.Output, StringComparison.Ordinal);
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(cluster.Diagnostics(), e);
        }
    }
}
