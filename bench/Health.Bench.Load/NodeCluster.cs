using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Health.Ledger.Security;

namespace Health.Bench.Load;

/// <summary>
/// Three (or more) health-node processes on loopback, as they run in production: mutual TLS between
/// members with certificates from a consortium CA made for the run, a shared dev token issuer and
/// pseudonym key. Started by the driver and stopped with it. Reads each process's CPU time and
/// peak memory from /proc.
/// </summary>
internal sealed class NodeCluster : INodeProcesses, IAsyncDisposable
{
    private readonly DirectoryInfo data = Directory.CreateTempSubdirectory("health-load-");
    private readonly List<Process> processes = [];
    private readonly List<List<string>> runArguments = [];
    private readonly int[] snapshotsInstalled;
    private readonly string issuerKey, pseudonymKey, authorityFolder;

    private NodeCluster(int size)
    {
        issuerKey = Path.Combine(data.FullName, "issuer.pem");
        pseudonymKey = Path.Combine(data.FullName, "pseudonym.key");
        authorityFolder = Path.Combine(data.FullName, "ca");
        snapshotsInstalled = new int[size];
        ConsortiumCertificates.EnsureAuthority(authorityFolder);
        var ports = Enumerable.Range(0, size).Select(_ => (Http: FreePort(), Raft: FreePort())).ToList();
        Urls = ports.Select(p => new Uri($"https://127.0.0.1:{p.Http}")).ToList();
        Members = ports.Select((p, i) => $"node{i + 1}=127.0.0.1:{p.Raft}=https://127.0.0.1:{p.Http}").ToList();
        var authority = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(authorityFolder, ConsortiumCertificates.AuthorityFile));
        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 1024, PooledConnectionLifetime = TimeSpan.FromMinutes(10) };
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is X509Certificate2 server && ConsortiumIdentity.ChainsTo(server, authority);
        Client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Each node's HTTP address, node1 first.</summary>
    public IReadOnlyList<Uri> Urls { get; }

    private IReadOnlyList<string> Members { get; }

    /// <summary>A client for the nodes that trusts the run's consortium CA, with room for many clients.</summary>
    public HttpClient Client { get; }

    /// <summary>The run's consortium CA certificate (PEM), for the command-line tools.</summary>
    public string AuthorityFile => Path.Combine(authorityFolder, ConsortiumCertificates.AuthorityFile);

    /// <summary>A new, empty folder under the run's data directory, removed with it.</summary>
    public string NewFolder(string name) => data.CreateSubdirectory($"{name}-{Guid.NewGuid():N}").FullName;

    /// <summary>Starts the nodes, each with <paramref name="extraArguments"/> added to its command line, and waits for a leader.</summary>
    public static async Task<NodeCluster> StartAsync(int size, CancellationToken token, params string[] extraArguments)
    {
        var cluster = new NodeCluster(size);
        for (var i = 0; i < size; i++)
        {
            var nodeId = $"node{i + 1}";
            var (certificate, key) = cluster.IssueCertificate(nodeId);
            var arguments = new List<string> { "run", "--node-id", nodeId, "--http", cluster.Urls[i].ToString().TrimEnd('/'), "--data", Path.Combine(cluster.data.FullName, nodeId),
                "--dev-issuer-key", cluster.issuerKey, "--pseudonym-key", cluster.pseudonymKey, "--rate-limit", "0",
                "--tls-cert", certificate, "--tls-key", key, "--tls-ca", cluster.AuthorityFile };
            arguments.AddRange(extraArguments);
            foreach (var member in cluster.Members)
                arguments.AddRange(["--member", member]);
            cluster.runArguments.Add(arguments);
            cluster.processes.Add(cluster.StartNode(i));
            if (i == 0)
                await cluster.WaitForKeysAsync(token).ConfigureAwait(false);
        }

        await cluster.LeaderAsync(token).ConfigureAwait(false);
        return cluster;
    }

    /// <summary>Kills node <paramref name="index"/> (0 for node1), as a crash would.</summary>
    public async Task KillAsync(int index)
    {
        processes[index].Kill(entireProcessTree: true);
        await processes[index].WaitForExitAsync().ConfigureAwait(false);
    }

    /// <summary>Starts a killed node again on its data directory.</summary>
    public void Restart(int index)
    {
        processes[index].Dispose();
        processes[index] = StartNode(index);
    }

    /// <summary>How many snapshots node <paramref name="index"/> has said it installed since the run began.</summary>
    public int SnapshotsInstalled(int index) => Volatile.Read(ref snapshotsInstalled[index]);

    /// <summary>The number of entries in node <paramref name="index"/>'s applied tree, or -1 while it does not answer.</summary>
    public async Task<long> TreeSizeAsync(int index, CancellationToken token)
    {
        try
        {
            var status = await Client.GetFromJsonAsync<JsonElement>(new Uri(Urls[index], "/ledger/status"), token).ConfigureAwait(false);
            return status.GetProperty("treeSize").GetInt64();
        }
        catch (HttpRequestException)
        {
            return -1;
        }
    }

    /// <summary>Node <paramref name="index"/>'s resident memory now (VmRSS), in MiB.</summary>
    public double ResidentMiB(int index) => MemoryMiB(processes[index], "VmRSS:");

    /// <summary>
    /// Runs a <c>health-node</c> command (the audit tools) to its end; returns its exit code, its peak
    /// resident memory and the peak resident memory of node <paramref name="watched"/> meanwhile, in
    /// MiB, and what it printed. A command still running after <paramref name="limit"/> is killed.
    /// </summary>
    /// <exception cref="TimeoutException">The command did not end within <paramref name="limit"/>.</exception>
    public async Task<(int ExitCode, double PeakMiB, double WatchedPeakMiB, string Output)> RunToolAsync(int watched, TimeSpan limit, params string[] arguments)
    {
        using var tool = Start(arguments);
        var output = tool.StandardOutput.ReadToEndAsync();
        var errors = tool.StandardError.ReadToEndAsync();
        double peak = 0, watchedPeak = ResidentMiB(watched);
        var exited = tool.WaitForExitAsync();
        var clock = Stopwatch.StartNew();
        while (!exited.IsCompleted)
        {
            if (clock.Elapsed > limit)
            {
                tool.Kill(entireProcessTree: true);
                throw new TimeoutException($"health-node {arguments[0]} {arguments[1]} did not end within {limit.TotalSeconds:0} s.");
            }

            peak = Math.Max(peak, MemoryMiB(tool, "VmHWM:"));
            watchedPeak = Math.Max(watchedPeak, ResidentMiB(watched));
            await Task.WhenAny(exited, Task.Delay(50)).ConfigureAwait(false);
        }

        await Task.WhenAll(exited, output, errors).ConfigureAwait(false);
        return (tool.ExitCode, peak, watchedPeak, await output.ConfigureAwait(false));
    }

    /// <summary>The current leader's address.</summary>
    public async Task<Uri> LeaderAsync(CancellationToken token)
    {
        for (var attempt = 0; attempt < 300; attempt++)
        {
            try
            {
                var status = await Client.GetFromJsonAsync<JsonElement>(new Uri(Urls[0], "/ledger/status"), token).ConfigureAwait(false);
                if (status.TryGetProperty("leaderId", out var leader) && leader.GetString() is { } id)
                    return Urls[int.Parse(id["node".Length..], CultureInfo.InvariantCulture) - 1];
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100, token).ConfigureAwait(false);
        }

        throw new InvalidOperationException("No leader was elected within 30 s.");
    }

    /// <summary>A token from the nodes' shared dev issuer, as <c>health-node token</c> makes it.</summary>
    public async Task<string> TokenAsync(params string[] claims)
    {
        using var process = Start(["token", "--key", issuerKey, .. claims]);
        var output = await process.StandardOutput.ReadToEndAsync().ConfigureAwait(false);
        await process.WaitForExitAsync().ConfigureAwait(false);
        return process.ExitCode == 0 ? output.Trim() : throw new InvalidOperationException($"health-node token exited {process.ExitCode}");
    }

    /// <summary>CPU seconds (user + system) each node has used so far; 0 for a node that is down.</summary>
    public IReadOnlyList<double> CpuSeconds() => processes.Select(CpuSecondsOf).ToList();

    /// <summary>Each node's peak resident memory (VmHWM) in MiB; 0 for a node that is down.</summary>
    public IReadOnlyList<double> PeakMemoryMiB() => processes.Select(p => MemoryMiB(p, "VmHWM:")).ToList();

    /// <summary>Issues a certificate from the run's consortium CA for a server on loopback (for the etcd members beside the nodes).</summary>
    public (string Certificate, string Key) IssueCertificate(string name)
        => ConsortiumCertificates.IssueNode(authorityFolder, Path.Combine(data.FullName, "certs"), name, name, [IPAddress.Loopback], ["localhost"]);

    /// <summary>CPU seconds (user + system) a process has used so far; 0 once it has gone.</summary>
    internal static double CpuSecondsOf(Process process)
    {
        if (process.HasExited)
            return 0;
        // /proc/PID/stat: fields 14 and 15 (after the parenthesised name) are utime and stime in clock ticks.
        var stat = File.ReadAllText($"/proc/{process.Id}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    /// <summary>A line of /proc/PID/status in MiB; 0 once the process has gone.</summary>
    internal static double MemoryMiB(Process process, string field)
    {
        try
        {
            var line = File.ReadLines($"/proc/{process.Id}/status").FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            return 0;
        }
    }

    private async Task WaitForKeysAsync(CancellationToken token)
    {
        // node1 makes the shared issuer and pseudonym keys; the others start once they exist.
        while (!File.Exists(issuerKey) || !File.Exists(pseudonymKey))
            await Task.Delay(50, token).ConfigureAwait(false);
    }

    private Process StartNode(int index)
    {
        var process = Start(runArguments[index]);
        Drain(process, line =>
        {
            if (line.Contains("Snapshot installed", StringComparison.Ordinal))
                Interlocked.Increment(ref snapshotsInstalled[index]);
        });
        return process;
    }

    private static Process Start(IEnumerable<string> arguments)
        => StartProgram("dotnet", [Path.Combine(AppContext.BaseDirectory, "health-node.dll"), .. arguments]);

    /// <summary>Starts <paramref name="program"/> with its output and errors redirected to this process.</summary>
    internal static Process StartProgram(string program, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        return Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
    }

    /// <summary>
    /// Reads a started program's output and errors line by line into <paramref name="onLine"/>, so
    /// that it never blocks on a full pipe.
    /// </summary>
    internal static void Drain(Process process, Action<string> onLine)
    {
        DataReceivedEventHandler received = (_, line) =>
        {
            if (line.Data is { } text)
                onLine(text);
        };
        process.OutputDataReceived += received;
        process.ErrorDataReceived += received;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <summary>Kills the processes still running and waits for each to end.</summary>
    internal static async Task StopAsync(IEnumerable<Process> processes)
    {
        foreach (var process in processes)
        {
            if (!process.HasExited)
                process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync().ConfigureAwait(false);
            process.Dispose();
        }
    }

    // Below the ephemeral range, so that no outgoing connection takes a port before a node binds it.
    private static int nextPort = 21000 + (Environment.ProcessId % 50) * 100;

    /// <summary>A loopback port nothing listens on, below the ephemeral range.</summary>
    internal static int FreePort()
    {
        while (true)
        {
            var port = Interlocked.Increment(ref nextPort);
            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return port;
            }
            catch (SocketException) when (port < 32000)
            {
            }
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await StopAsync(processes).ConfigureAwait(false);
        Client.Dispose();
        data.Delete(recursive: true);
    }
}
