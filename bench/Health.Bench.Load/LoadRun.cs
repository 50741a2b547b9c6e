using System.Diagnostics;

namespace Health.Bench.Load;

/// <summary>The node processes a run measures: their CPU time and peak memory, read from /proc.</summary>
internal interface INodeProcesses
{
    /// <summary>CPU seconds (user + system) each node has used so far.</summary>
    IReadOnlyList<double> CpuSeconds();

    /// <summary>Each node's peak resident memory (VmHWM) in MiB.</summary>
    IReadOnlyList<double> PeakMemoryMiB();
}

/// <summary>What one bounded run measured.</summary>
/// <param name="Name">The scenario and its setting.</param>
/// <param name="Clients">Concurrent clients.</param>
/// <param name="Ok">Requests answered as the scenario expects.</param>
/// <param name="Failed">Requests that failed or got another answer (not those still in flight when the time limit ended the run).</param>
/// <param name="Seconds">Wall time of the run.</param>
/// <param name="LatenciesMs">Latency of every answered request, sorted.</param>
/// <param name="CpuSeconds">CPU seconds each node used during the run.</param>
/// <param name="PeakMemoryMiB">Each node's peak resident memory at the end of the run.</param>
/// <param name="DriverCpuSeconds">CPU seconds the driver itself used (it shares the machine with the nodes).</param>
/// <param name="Resources">FHIR resources the answered requests stored (ingest), 0 where requests store none.</param>
internal sealed record LoadResult(string Name, int Clients, int Ok, int Failed, double Seconds, double[] LatenciesMs, IReadOnlyList<double> CpuSeconds, IReadOnlyList<double> PeakMemoryMiB,
    double DriverCpuSeconds, long Resources)
{
    /// <summary>Answered requests per second.</summary>
    public double Throughput => Ok / Seconds;

    /// <summary>Resources stored per second.</summary>
    public double ResourcesPerSecond => Resources / Seconds;

    /// <summary>The latency below which the given share of requests fell, in milliseconds.</summary>
    public double Percentile(double share) => LatenciesMs.Length == 0 ? double.NaN : LatenciesMs[(int)Math.Min(LatenciesMs.Length - 1, Math.Ceiling(share * LatenciesMs.Length) - 1)];
}

/// <summary>
/// A closed loop: <c>clients</c> tasks send requests back to back until <c>requests</c> have been
/// sent or <c>limit</c> has passed, whichever comes first. The same requests run for ten seconds
/// first, unmeasured, so that the figures are those of nodes whose code the JIT has optimised and
/// whose heaps and connection pools have grown to the load.
/// </summary>
internal static class LoadRun
{
    private const int MaxWarmUpRequests = 200_000;
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(10);

    /// <summary>Runs one request; true when the answer is the one the scenario expects.</summary>
    public delegate Task<bool> Request(int sequence, CancellationToken token);

    /// <summary>
    /// Warms up, then measures. <paramref name="resourcesOf"/>, where given, says how many FHIR
    /// resources the request with a sequence number stores when it is answered as expected.
    /// </summary>
    public static async Task<LoadResult> RunAsync(string name, INodeProcesses cluster, int clients, int requests, TimeSpan limit, Request request, CancellationToken token,
        Func<int, int>? resourcesOf = null)
    {
        await MeasureAsync(name, cluster, clients, MaxWarmUpRequests, WarmUp, request, null, token).ConfigureAwait(false);
        return await MeasureAsync(name, cluster, clients, requests, limit, request, resourcesOf, token).ConfigureAwait(false);
    }

    /// <summary>The same without the warm-up, for a run that continues a warmed-up one.</summary>
    public static Task<LoadResult> ContinueAsync(string name, INodeProcesses cluster, int clients, int requests, TimeSpan limit, Request request, CancellationToken token)
        => MeasureAsync(name, cluster, clients, requests, limit, request, null, token);

    private static async Task<LoadResult> MeasureAsync(string name, INodeProcesses cluster, int clients, int requests, TimeSpan limit, Request request, Func<int, int>? resourcesOf,
        CancellationToken token)
    {
        var latencies = new double[requests];
        var answered = new bool[requests];
        var next = -1;
        var failed = 0;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(token);
        deadline.CancelAfter(limit);
        var cpuBefore = cluster.CpuSeconds();
        var driverBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            int sequence;
            while (!deadline.IsCancellationRequested && (sequence = Interlocked.Increment(ref next)) < requests)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    answered[sequence] = await request(sequence, deadline.Token).ConfigureAwait(false);
                    latencies[sequence] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                }
                catch (OperationCanceledException) when (deadline.IsCancellationRequested && !token.IsCancellationRequested)
                {
                    // Cut off by the run's time limit: neither answered nor failed.
                    continue;
                }
                catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
                {
                }

                if (!answered[sequence])
                    Interlocked.Increment(ref failed);
            }
        }, CancellationToken.None))).ConfigureAwait(false);
        clock.Stop();
        var cpuAfter = cluster.CpuSeconds();
        var sorted = latencies.Where((_, i) => answered[i]).Order().ToArray();
        return new LoadResult(name, clients, sorted.Length, failed, clock.Elapsed.TotalSeconds, sorted,
            cpuAfter.Select((after, i) => after - cpuBefore[i]).ToList(), cluster.PeakMemoryMiB(),
            (Process.GetCurrentProcess().TotalProcessorTime - driverBefore).TotalSeconds,
            resourcesOf is null ? 0 : answered.Select((ok, i) => ok ? (long)resourcesOf(i) : 0).Sum());
    }
}
