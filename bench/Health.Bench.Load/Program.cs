using System.CommandLine;
using System.Globalization;
using Health.Bench.Load;
using Spectre.Console;

// health-load: the end-to-end load driver. Starts its own three-node cluster on loopback for each
// scenario, runs it bounded in requests and time, and prints throughput, latency percentiles, CPU
// seconds and peak memory per node. docs/PERFORMANCE.md has the figures and what limits them.
var scenario = new Argument<string>("scenario") { Description = "appends, reads, mixed, everything, ingest, all (those five), etcd, audit, catch-up, snapshot, growth or shards." };
var clients = new Option<string>("--clients") { Description = "Concurrent clients (for ingest, bundles in flight), comma-separated: one run each.", DefaultValueFactory = _ => string.Empty };
var requests = new Option<int>("--requests") { Description = "Requests (for ingest, bundles) per run.", DefaultValueFactory = _ => 4000 };
var seconds = new Option<int>("--seconds") { Description = "Longest a run may take.", DefaultValueFactory = _ => 60 };
var entries = new Option<int?>("--entries") { Description = "growth: how large the ledger grows, in steps of a tenth (1,000,000); catch-up and snapshot: appends the killed follower misses (100,000)." };
var rounds = new Option<int>("--rounds") { Description = "etcd: rounds of etcd's puts and the ledger's appends taken in turn at each level; the medians are compared.", DefaultValueFactory = _ => 3 };
var groupCounts = new Option<string>("--groups") { Description = "shards: numbers of Raft groups to compare, comma-separated.", DefaultValueFactory = _ => "1,2,3" };
var patientCount = new Option<int>("--patients") { Description = "Synthea patients loaded for the FHIR scenarios.", DefaultValueFactory = _ => 4 };
var samples = new Option<DirectoryInfo>("--samples") { Description = "The Synthea sample folder.", DefaultValueFactory = _ => new DirectoryInfo(Path.Combine(FindRepository(), "..", "shared", "fhir", "synthea-r4")) };
var root = new RootCommand("End-to-end load on a three-node health ledger started on loopback.") { scenario, clients, requests, seconds, entries, rounds, groupCounts, patientCount, samples };
root.SetAction(async (parsed, token) =>
{
    var name = parsed.GetValue(scenario)!;
    var names = name == "all" ? new[] { "appends", "reads", "mixed", "everything", "ingest" } : [name];
    if (names.Any(n => n is not ("appends" or "reads" or "mixed" or "everything" or "ingest" or "etcd" or "audit" or "catch-up" or "snapshot" or "growth" or "shards")))
    {
        await Console.Error.WriteLineAsync($"health-load: unknown scenario {name}").ConfigureAwait(false);
        return 2;
    }

    if (parsed.GetValue(requests) < 1 || parsed.GetValue(seconds) < 1 || parsed.GetValue(entries) < 10 || parsed.GetValue(patientCount) < 1 || parsed.GetValue(rounds) < 1)
    {
        await Console.Error.WriteLineAsync("health-load: --requests, --seconds, --rounds and --patients must be at least 1, --entries at least 10").ConfigureAwait(false);
        return 2;
    }

    if (name == "etcd" && !EtcdCluster.IsInstalled)
    {
        await Console.Error.WriteLineAsync("health-load: etcd is not on the PATH (Debian: apt-get install etcd-server)").ConfigureAwait(false);
        return 2;
    }

    var given = parsed.GetValue(clients) is { Length: > 0 } list ? PositiveNumbers(list) : [];
    var groups = PositiveNumbers(parsed.GetValue(groupCounts)!);
    if (given is null || groups is not { Length: > 0 })
    {
        await Console.Error.WriteLineAsync("health-load: --clients and --groups take positive whole numbers separated by commas").ConfigureAwait(false);
        return 2;
    }

    var results = new List<LoadResult>();
    var operations = new List<OperationResult>();
    foreach (var run in names)
    {
        var levels = given is { Length: > 0 } ? given : run switch { "appends" or "etcd" => [1, 16, 256], "ingest" => [4], "growth" or "shards" => [256], _ => [64] };
        if (run == "shards")
        {
            foreach (var count in groups)
            {
                var clusters = new List<NodeCluster>();
                try
                {
                    for (var g = 0; g < count; g++)
                        clusters.Add(await NodeCluster.StartAsync(3, token).ConfigureAwait(false));
                    foreach (var level in levels)
                        results.Add(await new ShardedAppends(clusters).RunAsync(level, parsed.GetValue(requests), TimeSpan.FromSeconds(parsed.GetValue(seconds)), token).ConfigureAwait(false));
                }
                finally
                {
                    foreach (var started in clusters)
                        await started.DisposeAsync().ConfigureAwait(false);
                }
            }

            continue;
        }

        // A snapshot every 64 Raft entries, so that the log no longer holds what the killed follower missed.
        var cluster = await NodeCluster.StartAsync(3, token, run == "snapshot" ? ["--snapshot-interval", "64"] : []).ConfigureAwait(false);
        await using var stop = cluster.ConfigureAwait(false);
        var limit = TimeSpan.FromSeconds(parsed.GetValue(seconds));
        var load = new Scenarios(cluster, parsed.GetValue(samples)!, limit);
        if (run == "etcd")
        {
            // Taken in turn, so that the machine's swings fall on both sides alike; the other side stays
            // up, idle. A new etcd each round, as ../shared/bench/etcd-baseline.sh starts one.
            for (var round = 0; round < parsed.GetValue(rounds); round++)
            {
                var etcd = await EtcdCluster.StartAsync(cluster, token).ConfigureAwait(false);
                await using var stopEtcd = etcd.ConfigureAwait(false);
                foreach (var level in levels)
                {
                    results.Add(await etcd.PutsAsync(level, parsed.GetValue(requests), limit, token).ConfigureAwait(false));
                    results.Add(await load.AppendsAsync(level, parsed.GetValue(requests), token).ConfigureAwait(false));
                    AnsiConsole.MarkupLineInterpolated($"[grey]round {round + 1}, {level} clients: etcd {results[^2].Throughput:F0} puts/s, ledger {results[^1].Throughput:F0} appends/s[/]");
                }
            }

            continue;
        }

        if (run == "growth")
        {
            var total = parsed.GetValue(entries) ?? 1_000_000;
            results.AddRange(await load.GrowthAsync(levels[0], total, Math.Max(total / 10, 1), token).ConfigureAwait(false));
            continue;
        }

        if (run is "catch-up" or "snapshot")
        {
            // The cluster warms up first, as for every measured run, so that the follower comes back to a leader whose code is compiled.
            results.Add(await load.AppendsAsync(256, 1000, token).ConfigureAwait(false));
            operations.Add(await new Operations(cluster, limit).CatchUpAsync(run == "snapshot" ? "snapshot install" : "catch-up", parsed.GetValue(entries) ?? 100_000, token).ConfigureAwait(false));
            continue;
        }

        var patients = run is "appends" or "ingest" ? null : await load.LoadPatientsAsync(parsed.GetValue(patientCount), token).ConfigureAwait(false);
        foreach (var level in levels)
        {
            var result = run switch
            {
                "appends" => await load.AppendsAsync(level, parsed.GetValue(requests), token).ConfigureAwait(false),
                "reads" => await load.ReadsAsync(patients!, level, parsed.GetValue(requests), token).ConfigureAwait(false),
                "mixed" => await load.MixedAsync(patients!, level, parsed.GetValue(requests), token).ConfigureAwait(false),
                "ingest" => await load.IngestAsync(level, parsed.GetValue(requests), token).ConfigureAwait(false),
                "audit" => await load.ReadsAsync(patients!, level, parsed.GetValue(requests), token).ConfigureAwait(false),
                _ => await load.EverythingAsync(patients!, level, parsed.GetValue(requests), token).ConfigureAwait(false),
            };
            results.Add(result);
            AnsiConsole.MarkupLineInterpolated($"[grey]{result.Name}, {level} clients: {result.Throughput:F0}/s[/]");
        }

        if (run == "audit")
            operations.AddRange(await new Operations(cluster, limit).AuditAsync(token).ConfigureAwait(false));
    }

    Print(results, operations);
    return results.Any(r => r.Ok == 0) ? 1 : 0;
});
return await root.Parse(args).InvokeAsync().ConfigureAwait(false);

static void Print(IReadOnlyList<LoadResult> results, IReadOnlyList<OperationResult> operations)
{
    var table = new Table().AddColumns("scenario", "clients", "ok", "failed", "req/s", "resources/s", "p50 ms", "p95 ms", "p99 ms", "CPU s per node", "driver CPU s", "peak MiB per node");
    foreach (var r in results)
    {
        table.AddRow(r.Name, r.Clients.ToString(CultureInfo.InvariantCulture), r.Ok.ToString(CultureInfo.InvariantCulture), r.Failed.ToString(CultureInfo.InvariantCulture),
            r.Throughput.ToString("F0", CultureInfo.InvariantCulture), r.Resources == 0 ? "-" : r.ResourcesPerSecond.ToString("F0", CultureInfo.InvariantCulture), r.Percentile(0.50).ToString("F1", CultureInfo.InvariantCulture),
            r.Percentile(0.95).ToString("F1", CultureInfo.InvariantCulture), r.Percentile(0.99).ToString("F1", CultureInfo.InvariantCulture),
            string.Join(" / ", r.CpuSeconds.Select(c => c.ToString("F1", CultureInfo.InvariantCulture))), r.DriverCpuSeconds.ToString("F1", CultureInfo.InvariantCulture),
            string.Join(" / ", r.PeakMemoryMiB.Select(m => m.ToString("F0", CultureInfo.InvariantCulture))));
    }

    // Redirected output has no terminal width; the table needs about 170 columns.
    AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 190);
    AnsiConsole.Write(table);
    if (operations.Count > 0)
    {
        var timed = new Table().AddColumns("operation", "entries", "seconds", "entries/s", "CPU s per node", "peak MiB", "how");
        foreach (var o in operations)
        {
            timed.AddRow(Markup.Escape(o.Name), o.Entries.ToString("N0", CultureInfo.InvariantCulture), o.Seconds.ToString("F2", CultureInfo.InvariantCulture),
                o.EntriesPerSecond.ToString("F0", CultureInfo.InvariantCulture), string.Join(" / ", o.CpuSeconds.Select(c => c.ToString("F1", CultureInfo.InvariantCulture))),
                string.Join(" / ", o.PeakMemoryMiB.Select(m => m.ToString("F0", CultureInfo.InvariantCulture))), Markup.Escape(o.Detail));
        }

        AnsiConsole.Write(timed);
    }

    if (results.Any(r => r.Name == EtcdCluster.PutsName))
    {
        var sideBySide = new Table().AddColumns("clients", "etcd puts/s (median)", "ledger appends/s (median)", "ratio", "ratio per round");
        foreach (var level in results.Select(r => r.Clients).Distinct())
        {
            var etcd = results.Where(r => r.Name == EtcdCluster.PutsName && r.Clients == level).Select(r => r.Throughput).ToList();
            var ledger = results.Where(r => r.Name == Scenarios.AppendsName && r.Clients == level).Select(r => r.Throughput).ToList();
            sideBySide.AddRow(level.ToString(CultureInfo.InvariantCulture), Median(etcd).ToString("F0", CultureInfo.InvariantCulture), Median(ledger).ToString("F0", CultureInfo.InvariantCulture),
                (Median(ledger) / Median(etcd)).ToString("F2", CultureInfo.InvariantCulture) + "×",
                string.Join(" ", etcd.Zip(ledger, (e, l) => (l / e).ToString("F2", CultureInfo.InvariantCulture) + "×")));
        }

        AnsiConsole.Write(sideBySide);
    }

    AnsiConsole.MarkupLineInterpolated($"[grey]{Environment.ProcessorCount} cores; {results.Sum(r => r.Ok + r.Failed)} requests; nodes and driver share the machine[/]");
}

static double Median(IReadOnlyList<double> values)
{
    var sorted = values.Order().ToList();
    return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
}

// Positive whole numbers separated by commas, or null when anything else is there.
static int[]? PositiveNumbers(string list)
{
    var numbers = list.Split(',').Select(c => int.TryParse(c, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 0).ToArray();
    return numbers.Contains(0) ? null : numbers;
}

static string FindRepository()
{
    for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
    {
        if (File.Exists(Path.Combine(directory.FullName, "Health.sln")))
            return directory.FullName;
    }

    return Directory.GetCurrentDirectory();
}
