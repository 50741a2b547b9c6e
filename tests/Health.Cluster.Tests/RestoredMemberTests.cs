using System.Text.Json;
using Health.Ledger.Replication;

namespace Health.Cluster.Tests;

/// <summary>
/// A member restored from a backup has lost its Raft log and its votes: until it has caught up it
/// must not help elect a leader that lacks entries the group acknowledged.
/// </summary>
public sealed class RestoredMemberTests
{
    /// <param name="snapshotInterval">Raft entries between snapshot marks: with 8, the restored member catches up by a snapshot.</param>
    [Theory]
    [InlineData(2048)]
    [InlineData(8)]
    public async Task A_restored_member_does_not_vote_until_it_has_caught_up_and_no_acknowledged_append_is_lost(int snapshotInterval)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var token = timeout.Token;
        using var cluster = new LedgerCluster(3, "--snapshot-interval", snapshotInterval.ToString(System.Globalization.CultureInfo.InvariantCulture));
        try
        {
            var restored = await cluster.WaitForLeaderAsync(token);
            var followers = cluster.Nodes.Where(n => n != restored).ToList();
            var (keeper, stale) = (followers[0], followers[1]);
            var backup = Path.Combine(cluster.Root, "restored.zip");
            await NodeProcess.RunToolAsync(["backup", "--url", restored.HttpUrl.ToString(), "--token", await cluster.MintTokenAsync("--role", "operator", "--org", restored.NodeId), "--out", backup]);
            var masterKey = Path.Combine(cluster.Root, "restored-master.key");
            File.Copy(Path.Combine(restored.DataDirectory, "keys", "master.key"), masterKey);

            // Acknowledged by the leader and the keeper alone: the stale member is frozen meanwhile.
            stale.Pause();
            var acknowledged = new List<(long Index, string Note)>();
            for (var i = 0; i < 20; i++)
                acknowledged.Add((await cluster.AppendAsync(restored, $"acknowledged-{i}", token), $"acknowledged-{i}"));

            // The leader's disk is lost and the keeper is down: the restored member and the stale
            // one are a majority, but only with the restored member's vote, which it must not give.
            restored.Kill();
            keeper.Kill();
            Directory.Delete(restored.DataDirectory, recursive: true);
            await NodeProcess.RunToolAsync(["restore", backup, "--data", restored.DataDirectory, "--master-key", masterKey]);
            stale.Resume();
            restored.Start();
            await cluster.WaitForHealthAsync(restored, token);
            var startTerm = (await cluster.TryStatusAsync(stale, token))?.Term ?? 0;

            // Several elections fail for want of the restored member's vote (bounded in case they do not happen).
            using (var elections = CancellationTokenSource.CreateLinkedTokenSource(token))
            {
                elections.CancelAfter(TimeSpan.FromSeconds(45));
                while (!elections.IsCancellationRequested)
                {
                    var statuses = await Task.WhenAll(cluster.TryStatusAsync(stale, token), cluster.TryStatusAsync(restored, token));
                    Assert.DoesNotContain(statuses, s => s?.Role == "leader");
                    Assert.True(statuses[1]?.Recovering ?? true);
                    if (statuses[0] is { } status && status.Term >= startTerm + 3)
                        break;
                    await Task.Delay(100, token);
                }
            }

            keeper.Start();
            LedgerStatus? caughtUp;
            while ((caughtUp = await cluster.TryStatusAsync(restored, token)) is not { Recovering: false })
                await Task.Delay(100, token);
            var converged = await cluster.WaitForConvergenceAsync(long.Max(acknowledged[^1].Index + 1, caughtUp.TreeSize), token);
            Assert.All(converged, s => Assert.Null(s.DivergedAt));
            foreach (var node in cluster.Nodes)
            {
                var entries = await cluster.ReadAllEntriesAsync(node, converged[0].TreeSize, token);
                foreach (var (index, note) in acknowledged)
                    Assert.Equal(note, Fields(entries[(int)index - 1]).GetProperty("note").GetString());
                Assert.Contains(entries, e => e.GetProperty("kind").GetString() == "MemberRecovered" && Fields(e).GetProperty("nodeId").GetString() == restored.NodeId);
            }

            if (snapshotInterval < acknowledged.Count)
                Assert.Contains("Snapshot installed", restored.Output, StringComparison.Ordinal);

            // Recovered, it votes again: with the keeper down once more, the other two elect a leader.
            keeper.Kill();
            await cluster.WaitForLeaderAsync(token);
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(await cluster.DiagnosticsWithStatusAsync(), e);
        }
    }

    private static JsonElement Fields(JsonElement entry) => entry.GetProperty("fields");
}
