using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Health.Cluster.Tests;

public sealed class LedgerDurabilityTests
{
    private const int TotalAppends = 10_000;
    private const int WorkersPerNode = 16;

    [Fact]
    public async Task Acknowledged_appends_survive_leader_kill_and_full_restart()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var token = timeout.Token;
        using var cluster = new LedgerCluster();
        try
        {
            var leader = await cluster.WaitForLeaderAsync(token);
            var acknowledged = new ConcurrentDictionary<string, long>();
            var attempts = 0;
            var killAfter = TotalAppends / 3;
            var killed = 0;

            async Task Worker(string workerId)
            {
                for (var seq = 0; Interlocked.Increment(ref attempts) <= TotalAppends && !token.IsCancellationRequested; seq++)
                {
                    // Each worker spreads its appends over every node still running.
                    var running = cluster.Nodes.Where(n => n.IsRunning).ToList();
                    var node = running[seq % running.Count];
                    var id = $"{workerId}-{seq}";
                    try
                    {
                        using var response = await cluster.Client.PostAsJsonAsync(new Uri(node.HttpUrl, "/ledger/entries"),
                            new { kind = "OperatorNote", fields = new Dictionary<string, string> { ["note"] = id } }, token);
                        if (response.StatusCode == HttpStatusCode.Created)
                        {
                            var body = await response.Content.ReadFromJsonAsync<JsonElement>(token);
                            acknowledged[id] = body.GetProperty("index").GetInt64();
                        }
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !token.IsCancellationRequested)
                    {
                        // Not acknowledged: it may or may not be in the ledger, and is not counted.
                    }

                    if (acknowledged.Count >= killAfter && Interlocked.Exchange(ref killed, 1) == 0)
                        leader.Kill();
                }
            }

            await Task.WhenAll(Enumerable.Range(0, WorkersPerNode * cluster.Nodes.Count).Select(w => Task.Run(() => Worker($"w{w}"), token)));
            Assert.Equal(1, killed);
            Assert.True(acknowledged.Count > TotalAppends / 2, $"only {acknowledged.Count} of {TotalAppends} appends were acknowledged");

            var maxIndex = acknowledged.Values.Max();
            leader.Start();
            var statuses = await cluster.WaitForConvergenceAsync(maxIndex, token);
            await AssertEveryAcknowledgedAppendPresentOnceAsync(cluster, statuses[0].TreeSize, acknowledged, token);

            foreach (var node in cluster.Nodes)
                node.Kill();
            foreach (var node in cluster.Nodes)
                node.Start();
            await cluster.WaitForLeaderAsync(token);
            var restarted = await cluster.WaitForConvergenceAsync(statuses[0].TreeSize, token);
            await AssertEveryAcknowledgedAppendPresentOnceAsync(cluster, restarted[0].TreeSize, acknowledged, token);
        }
        catch (Exception e) when (!Debugger.IsAttached)
        {
            var statuses = await Task.WhenAll(cluster.Nodes.Select(n => cluster.TryStatusAsync(n, CancellationToken.None)));
            throw new InvalidOperationException(
                string.Join('\n', statuses.Select(s => s is null ? "(no status)" : $"{s.NodeId} {s.Role} term {s.Term} leader {s.LeaderId} commit {s.CommitIndex} applied {s.AppliedIndex} size {s.TreeSize}"))
                + "\n" + cluster.Diagnostics(), e);
        }
    }

    // A hung member (here SIGSTOP: the kernel still accepts its connections, nothing answers) must
    // not keep the others from electing a leader: their vote requests to it time out before the
    // election they belong to does.
    [Fact]
    public async Task A_frozen_leader_is_replaced_while_it_stays_frozen_and_follows_when_thawed()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var token = timeout.Token;
        using var cluster = new LedgerCluster();
        var acknowledged = new Dictionary<string, long>();
        try
        {
            for (var round = 0; round < 3; round++)
            {
                var leader = await cluster.WaitForLeaderAsync(token);
                acknowledged[$"before-{round}"] = await cluster.AppendAsync(leader, $"before-{round}", token);
                leader.Pause();
                try
                {
                    using var successorTimeout = CancellationTokenSource.CreateLinkedTokenSource(token);
                    successorTimeout.CancelAfter(TimeSpan.FromSeconds(30));
                    var successor = await cluster.WaitForLeaderAsync(successorTimeout.Token, except: leader);
                    acknowledged[$"frozen-{round}"] = await cluster.AppendAsync(successor, $"frozen-{round}", token);
                }
                finally
                {
                    leader.Resume();
                }
            }

            var statuses = await cluster.WaitForConvergenceAsync(acknowledged.Values.Max(), token);
            await AssertEveryAcknowledgedAppendPresentOnceAsync(cluster, statuses[0].TreeSize, acknowledged, token);
        }
        catch (Exception e) when (!Debugger.IsAttached)
        {
            throw new InvalidOperationException($"acknowledged before the failure: {string.Join(", ", acknowledged.Keys)}\n{cluster.Diagnostics()}", e);
        }
    }

    internal static async Task AssertEveryAcknowledgedAppendPresentOnceAsync(
        LedgerCluster cluster, long treeSize, IReadOnlyDictionary<string, long> acknowledged, CancellationToken token)
    {
        var perNode = await Task.WhenAll(cluster.Nodes.Select(n => cluster.ReadAllEntriesAsync(n, treeSize, token)));
        var canonical = perNode.Select(entries => entries.Select(e => e.GetProperty("canonical").GetString()).ToList()).ToList();
        foreach (var other in canonical.Skip(1))
            Assert.Equal(canonical[0], other);

        var entries = perNode[0];
        var occurrences = entries
            .Where(e => e.GetProperty("kind").GetString() == "OperatorNote")
            .GroupBy(e => e.GetProperty("fields").GetProperty("note").GetString()!)
            .ToDictionary(g => g.Key, g => g.Select(e => e.GetProperty("index").GetInt64()).ToList());
        foreach (var (id, index) in acknowledged)
        {
            Assert.True(occurrences.TryGetValue(id, out var indices), $"acknowledged append {id} is missing");
            Assert.Equal([index], indices);
        }

        for (var i = 1; i < entries.Count; i++)
            Assert.Equal(entries[i - 1].GetProperty("leafHash").GetString(), entries[i].GetProperty("previousHash").GetString());
    }
}
