using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit.Abstractions;

namespace Health.Cluster.Tests;

/// <summary>
/// Randomised fault schedules under load on three and five node processes: kill -9 of the leader,
/// of a follower or of every node at once, and a node frozen with SIGSTOP and thawed, in an order
/// drawn from a seed that is printed (set HEALTH_FAULT_SEED to replay one). Afterwards every
/// acknowledged append is present exactly once at its index on every node, in the same order, with
/// equal Merkle roots. Snapshots are marked every 64 Raft entries, so the logs are compacted many
/// times during a schedule and a node brought back is often behind its peers' compacted logs: it
/// catches up through a copy of the leader's projection made while appends go on.
/// </summary>
public sealed class FaultScheduleTests(ITestOutputHelper output)
{
    private const int Steps = 6;
    private const int Workers = 24;
    private const int AttemptsPerWorker = 20_000;
    private static readonly TimeSpan FailedAttemptPause = TimeSpan.FromMilliseconds(25);

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public async Task Acknowledged_appends_survive_a_random_fault_schedule(int nodes)
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("HEALTH_FAULT_SEED"), out var given) ? given : Random.Shared.Next();
        output.WriteLine($"fault schedule seed {seed} (replay with HEALTH_FAULT_SEED={seed})");
        var random = new Random(seed);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var token = timeout.Token;
        using var cluster = new LedgerCluster(nodes, "--snapshot-interval", "64");
        var schedule = new List<string>();
        try
        {
            await cluster.WaitForLeaderAsync(token);
            var acknowledged = new ConcurrentDictionary<string, long>();
            var workersDone = 0;
            using var load = CancellationTokenSource.CreateLinkedTokenSource(token);
            async Task Worker(int worker)
            {
                for (var seq = 0; seq < AttemptsPerWorker && !load.IsCancellationRequested; seq++)
                {
                    var running = cluster.Nodes.Where(n => n.IsRunning).ToList();
                    if (running.Count == 0)
                    {
                        await Task.Delay(50, CancellationToken.None);
                        continue;
                    }

                    var id = $"w{worker}-{seq}";
                    var acknowledgedNow = false;
                    try
                    {
                        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(running[(worker + seq) % running.Count].HttpUrl, "/ledger/entries"))
                        {
                            Content = JsonContent.Create(new { kind = "OperatorNote", fields = new Dictionary<string, string> { ["note"] = id } }),
                        };
                        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(load.Token);
                        attempt.CancelAfter(TimeSpan.FromSeconds(5));
                        using var response = await cluster.Client.SendAsync(request, attempt.Token);
                        if (response.StatusCode == HttpStatusCode.Created)
                        {
                            acknowledged[id] = (await response.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("index").GetInt64();
                            acknowledgedNow = true;
                        }
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException or OperationCanceledException or System.Net.Sockets.SocketException)
                    {
                        // Not acknowledged: it may or may not be on the ledger, and is not counted.
                        // (HttpClient lets a SocketException through unwrapped when the node dies
                        // between accepting the connection and the client reading its address.)
                    }

                    // A node still starting refuses connections at once: without a pause, a worker
                    // spent its attempts on a group restarting after a kill and sent nothing after
                    // the last fault, which then looked like a group that no longer commits.
                    if (!acknowledgedNow)
                        await Task.Delay(FailedAttemptPause, CancellationToken.None);
                }

                Interlocked.Increment(ref workersDone);
            }

            var workers = Enumerable.Range(0, Workers).Select(w => Task.Run(() => Worker(w), CancellationToken.None)).ToList();
            for (var step = 0; step < Steps; step++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(random.Next(300, 900)), token);
                var leader = await cluster.WaitForLeaderAsync(token);
                var followers = cluster.Nodes.Where(n => n != leader).ToList();
                switch (random.Next(4))
                {
                    case 0:
                        schedule.Add($"kill -9 leader {leader.NodeId}");
                        leader.Kill();
                        await Task.Delay(TimeSpan.FromMilliseconds(random.Next(500, 1500)), token);
                        leader.Start();
                        break;
                    case 1:
                        var follower = followers[random.Next(followers.Count)];
                        schedule.Add($"kill -9 follower {follower.NodeId}");
                        follower.Kill();
                        await Task.Delay(TimeSpan.FromMilliseconds(random.Next(500, 1500)), token);
                        follower.Start();
                        break;
                    case 2:
                        schedule.Add("kill -9 every node");
                        foreach (var node in cluster.Nodes)
                            node.Kill();
                        await Task.Delay(TimeSpan.FromMilliseconds(random.Next(200, 1000)), token);
                        foreach (var node in cluster.Nodes)
                            node.Start();
                        break;
                    default:
                        var frozen = cluster.Nodes[random.Next(cluster.Nodes.Count)];
                        schedule.Add($"SIGSTOP {frozen.NodeId}{(frozen == leader ? " (leader)" : string.Empty)}");
                        frozen.Pause();
                        await Task.Delay(TimeSpan.FromMilliseconds(random.Next(500, 2000)), token);
                        frozen.Resume();
                        break;
                }
            }

            // Every fault is healed now: the group must take appends again (a schedule of faults
            // closer together than elections can leave no time to acknowledge any before this).
            var atLastFault = acknowledged.Count;
            var doneAtLastFault = Volatile.Read(ref workersDone);
            using (var recovery = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            {
                while (acknowledged.Count <= atLastFault && !recovery.IsCancellationRequested)
                    await Task.Delay(50, token);
            }

            await load.CancelAsync();
            await Task.WhenAll(workers);
            output.WriteLine($"schedule: {string.Join("; ", schedule)}; {acknowledged.Count} appends acknowledged, {atLastFault} of them before the last fault healed; {doneAtLastFault} of {Workers} workers had used up their attempts by then");
            Assert.True(doneAtLastFault < Workers, "every worker had used up its attempts before the last fault healed: the schedule checks nothing after it");
            Assert.True(acknowledged.Count > atLastFault, "no append was acknowledged within 60 s of the last fault healing");
            var statuses = await cluster.WaitForConvergenceAsync(acknowledged.Values.Max(), token);
            await LedgerDurabilityTests.AssertEveryAcknowledgedAppendPresentOnceAsync(cluster, statuses[0].TreeSize, acknowledged, token);
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            // A schedule that fails may not come back with its seed (timing decides much of it): keep the logs and projections.
            cluster.KeepData = true;
            throw new InvalidOperationException($"seed {seed}, schedule: {string.Join("; ", schedule)}, data kept in {cluster.Root}\n{await cluster.DiagnosticsWithStatusAsync()}", e);
        }
    }
}
