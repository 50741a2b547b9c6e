using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Health.Bench.Load;

/// <summary>What a one-off operation measured: a member catching up, an audit export or its verification.</summary>
/// <param name="Name">The operation and its setting.</param>
/// <param name="Entries">Ledger entries it covered.</param>
/// <param name="Seconds">Wall time it took.</param>
/// <param name="CpuSeconds">CPU seconds each node used meanwhile.</param>
/// <param name="PeakMemoryMiB">Peak resident memory of what the operation watches (a node or the tool), in MiB.</param>
/// <param name="Detail">How it went, in words.</param>
internal sealed record OperationResult(string Name, long Entries, double Seconds, IReadOnlyList<double> CpuSeconds, IReadOnlyList<double> PeakMemoryMiB, string Detail)
{
    /// <summary>Entries covered per second.</summary>
    public double EntriesPerSecond => Entries / Seconds;
}

/// <summary>
/// The scenarios that time one operation rather than a stream of requests: a follower catching up
/// after it was killed (from the log, or from a snapshot once the log no longer holds what it
/// missed), and the audit log exported from a node and verified offline. Each is bounded.
/// </summary>
internal sealed partial class Operations(NodeCluster cluster, TimeSpan limit)
{
    private const int AppendClients = 256;
    private static readonly TimeSpan CatchUpLimit = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan ToolLimit = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Kills a follower, appends <paramref name="entries"/> at 256 clients meanwhile, starts it again
    /// and measures from its process start until its applied tree is as large as the leader's.
    /// </summary>
    public async Task<OperationResult> CatchUpAsync(string name, int entries, CancellationToken token)
    {
        var leaderUrl = await cluster.LeaderAsync(token).ConfigureAwait(false);
        var leader = cluster.Urls.ToList().IndexOf(leaderUrl);
        var follower = Enumerable.Range(0, cluster.Urls.Count).Last(i => i != leader);
        await cluster.KillAsync(follower).ConfigureAwait(false);
        var body = Scenarios.NoteBody("catch-up");
        var appended = await LoadRun.ContinueAsync("appends while a follower is down", cluster, AppendClients, entries, limit,
            (_, ct) => Scenarios.PostAppendAsync(cluster.Client, leaderUrl, body, ct), token).ConfigureAwait(false);
        var target = await cluster.TreeSizeAsync(leader, token).ConfigureAwait(false);
        var installedBefore = cluster.SnapshotsInstalled(follower);
        var cpuBefore = cluster.CpuSeconds();
        var clock = Stopwatch.StartNew();
        cluster.Restart(follower);
        while (await cluster.TreeSizeAsync(follower, token).ConfigureAwait(false) < target)
        {
            if (clock.Elapsed > CatchUpLimit)
                throw new TimeoutException($"node{follower + 1} did not catch up to {target:N0} entries within {CatchUpLimit.TotalSeconds:0} s.");
            await Task.Delay(20, token).ConfigureAwait(false);
        }

        clock.Stop();
        var how = cluster.SnapshotsInstalled(follower) > installedBefore ? "from a snapshot, then the log" : "from the log";
        return new OperationResult($"{name}: node{follower + 1} killed, {appended.Ok:N0} appends missed", appended.Ok, clock.Elapsed.TotalSeconds,
            Spent(cpuBefore), cluster.PeakMemoryMiB(), $"{how}; process start included; ledger {target:N0} entries");
    }

    /// <summary>
    /// Exports the access log from node1 with <c>health-node audit export</c>, then verifies the
    /// export offline with <c>health-node audit verify</c>, as an auditor would.
    /// </summary>
    public async Task<IReadOnlyList<OperationResult>> AuditAsync(CancellationToken token)
    {
        var auditor = await cluster.TokenAsync("--role", "auditor").ConfigureAwait(false);
        var folder = cluster.NewFolder("export");
        var residentBefore = cluster.ResidentMiB(0);
        var cpuBefore = cluster.CpuSeconds();
        var clock = Stopwatch.StartNew();
        var export = await cluster.RunToolAsync(0, ToolLimit, "audit", "export", "--url", cluster.Urls[0].ToString(), "--token", auditor, "--out", folder, "--cacert", cluster.AuthorityFile).ConfigureAwait(false);
        clock.Stop();
        if (export.ExitCode != 0)
            throw new InvalidOperationException($"health-node audit export exited {export.ExitCode}.");
        var cpu = Spent(cpuBefore);
        long entries;
        using (var manifest = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(folder, "manifest.json"), token).ConfigureAwait(false)))
            entries = manifest.RootElement.GetProperty("treeSize").GetInt64();
        var exported = new OperationResult("audit export from node1", entries, clock.Elapsed.TotalSeconds, cpu, [export.WatchedPeakMiB],
            string.Create(CultureInfo.InvariantCulture, $"node1 resident {residentBefore:F0} MiB before, {export.WatchedPeakMiB:F0} MiB at its peak during the export"));

        var verify = await cluster.RunToolAsync(0, ToolLimit, "audit", "verify", folder, "--ca", cluster.AuthorityFile).ConfigureAwait(false);
        if (verify.ExitCode != 0)
            throw new InvalidOperationException($"health-node audit verify exited {verify.ExitCode}: the export did not verify.");
        var verifying = VerifierSeconds().Match(verify.Output);
        if (!verifying.Success)
            throw new InvalidOperationException($"health-node audit verify passed but its report was not understood: {verify.Output.Trim()}");
        // The verifier writes its figures in the machine's culture.
        var seconds = double.Parse(verifying.Groups[1].Value.Replace(',', '.'), CultureInfo.InvariantCulture);
        var verified = new OperationResult("audit verify, offline", entries, seconds, [], [verify.PeakMiB],
            "signatures, proofs, entries and events, timed by the verifier (process start excluded); the verifier's peak");
        return [exported, verified];
    }

    // The verifier's own report: "VERIFIED: … in 1.23 s (…)".
    [GeneratedRegex(@"^VERIFIED: .* in ([0-9]+(?:[.,][0-9]+)?) s \(", RegexOptions.Multiline)]
    private static partial Regex VerifierSeconds();

    private IReadOnlyList<double> Spent(IReadOnlyList<double> before) => cluster.CpuSeconds().Select((after, i) => Math.Max(0, after - before[i])).ToList();
}
