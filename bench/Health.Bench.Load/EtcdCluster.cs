using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Health.Bench.Load;

/// <summary>
/// A three-member etcd (Debian's <c>etcd-server</c>) on loopback, set up as the ledger's nodes are:
/// clients over TLS and members over mutual TLS, with certificates from the run's consortium CA,
/// and every put on disk before it is acknowledged (etcd's default). Started beside a
/// <see cref="NodeCluster"/>, whose data folder and CA it uses; its data goes when it stops.
/// </summary>
internal sealed class EtcdCluster : INodeProcesses, IAsyncDisposable
{
    /// <summary>The name of a run of <see cref="PutsAsync"/> in the driver's table.</summary>
    public const string PutsName = "etcd puts";

    private const int Size = 3;
    private readonly NodeCluster nodes;
    private readonly List<Process> processes = [];
    private readonly List<Uri> clientUrls = [];
    private readonly ConcurrentQueue<string> lastLines = new();
    private readonly string data;

    private EtcdCluster(NodeCluster nodes)
    {
        this.nodes = nodes;
        data = nodes.NewFolder("etcd");
    }

    /// <summary>Whether an <c>etcd</c> program is on the PATH.</summary>
    public static bool IsInstalled => (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
        .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Any(folder => File.Exists(Path.Combine(folder, "etcd")));

    /// <summary>Starts the members and waits until one of them leads.</summary>
    public static async Task<EtcdCluster> StartAsync(NodeCluster nodes, CancellationToken token)
    {
        var etcd = new EtcdCluster(nodes);
        try
        {
            var ports = Enumerable.Range(0, Size).Select(_ => (Client: NodeCluster.FreePort(), Peer: NodeCluster.FreePort())).ToList();
            var initial = string.Join(',', ports.Select((p, i) => $"m{i + 1}=https://127.0.0.1:{p.Peer}"));
            for (var i = 0; i < Size; i++)
            {
                var name = $"m{i + 1}";
                var (certificate, key) = nodes.IssueCertificate(name);
                var client = $"https://127.0.0.1:{ports[i].Client}";
                var peer = $"https://127.0.0.1:{ports[i].Peer}";
                etcd.clientUrls.Add(new Uri(client));
                etcd.processes.Add(etcd.Start(
                    "--name", name, "--data-dir", Path.Combine(etcd.data, name),
                    "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", "health-load",
                    "--cert-file", certificate, "--key-file", key,
                    "--peer-cert-file", certificate, "--peer-key-file", key, "--peer-trusted-ca-file", nodes.AuthorityFile, "--peer-client-cert-auth",
                    "--log-level", "error"));
            }

            await etcd.LeaderAsync(token).ConfigureAwait(false);
            return etcd;
        }
        catch
        {
            await etcd.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Durable puts of 225 random bytes, 300 characters in the request (as <c>../shared/bench/etcd-baseline.sh</c> makes them), to the
    /// leader through etcd's HTTP/JSON gateway, by the same client and rules as the ledger's appends.
    /// </summary>
    public async Task<LoadResult> PutsAsync(int clients, int requests, TimeSpan limit, CancellationToken token)
    {
        var put = new Uri(await LeaderAsync(token).ConfigureAwait(false), "/v3/kv/put");
        var body = JsonSerializer.SerializeToUtf8Bytes(new
        {
            key = Convert.ToBase64String(Encoding.UTF8.GetBytes("bench-key")),
            value = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(225)),
        });
        return await LoadRun.RunAsync(PutsName, this, clients, requests, limit, async (_, ct) =>
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var response = await nodes.Client.PostAsync(put, content, ct).ConfigureAwait(false);
            return response.IsSuccessStatusCode;
        }, token).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public IReadOnlyList<double> CpuSeconds() => processes.Select(NodeCluster.CpuSecondsOf).ToList();

    /// <inheritdoc/>
    public IReadOnlyList<double> PeakMemoryMiB() => processes.Select(p => NodeCluster.MemoryMiB(p, "VmHWM:")).ToList();

    // The client address of the member that leads: each member's status names the leader by member id.
    private async Task<Uri> LeaderAsync(CancellationToken token)
    {
        for (var attempt = 0; attempt < 300; attempt++)
        {
            foreach (var url in clientUrls)
            {
                try
                {
                    using var response = await nodes.Client.PostAsJsonAsync(new Uri(url, "/v3/maintenance/status"), new { }, token).ConfigureAwait(false);
                    var status = await response.Content.ReadFromJsonAsync<JsonElement>(token).ConfigureAwait(false);
                    if (response.IsSuccessStatusCode && status.TryGetProperty("leader", out var leader)
                        && status.GetProperty("header").GetProperty("member_id").ToString() == leader.ToString())
                        return url;
                }
                catch (Exception e) when (e is HttpRequestException or JsonException)
                {
                }
            }

            if (processes.FirstOrDefault(p => p.HasExited) is { } exited)
                throw new InvalidOperationException($"etcd exited with {exited.ExitCode} before a leader was elected. Its last lines: {string.Join(" | ", lastLines)}");
            await Task.Delay(100, token).ConfigureAwait(false);
        }

        throw new InvalidOperationException($"etcd elected no leader within 30 s. Its last lines: {string.Join(" | ", lastLines)}");
    }

    private Process Start(params string[] arguments)
    {
        var process = NodeCluster.StartProgram("etcd", arguments);
        // The last lines are kept for a start that fails.
        NodeCluster.Drain(process, line =>
        {
            lastLines.Enqueue(line);
            while (lastLines.Count > 5)
                lastLines.TryDequeue(out string? _);
        });
        return process;
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await NodeCluster.StopAsync(processes).ConfigureAwait(false);
        Directory.Delete(data, recursive: true);
    }
}
