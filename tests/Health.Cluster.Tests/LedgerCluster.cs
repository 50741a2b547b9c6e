using System.Net.Http.Json;
using System.Text.Json;
using Health.Ledger.Replication;

namespace Health.Cluster.Tests;

/// <summary>Three node processes on loopback with their own data directories; always cleaned up.</summary>
public sealed class LedgerCluster : IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly string root = Directory.CreateTempSubdirectory("ledger-cluster").FullName;

    /// <summary>The folder holding every node's data directory.</summary>
    public string Root => root;

    private readonly List<string> members;
    private readonly List<NodeProcess> nodes;

    public LedgerCluster(int size = 3, params string[] extraArguments)
    {
        var ports = Enumerable.Range(0, size).Select(_ => (Http: NodeProcess.FreePort(), Raft: NodeProcess.FreePort())).ToList();
        members = ports.Select((p, i) => $"node{i + 1}=127.0.0.1:{p.Raft}=http://127.0.0.1:{p.Http}").ToList();
        string[] shared = ["--dev-issuer-key", DevIssuerKey, "--pseudonym-key", Path.Combine(root, "pseudonym.key"), .. extraArguments];
        nodes = ports.Select((p, i) => new NodeProcess($"node{i + 1}", new Uri($"http://127.0.0.1:{p.Http}"), Path.Combine(root, $"node{i + 1}"), members, shared)).ToList();
        foreach (var node in nodes)
            node.Start();
    }

    public IReadOnlyList<NodeProcess> Nodes => nodes;

    /// <summary>The dev token issuer's key every node of this cluster trusts.</summary>
    public string DevIssuerKey => Path.Combine(root, "dev-issuer.pem");

    /// <summary>A bearer token from the cluster's dev issuer, made with <c>health-node token</c>.</summary>
    public Task<string> MintTokenAsync(params string[] arguments)
        => NodeProcess.RunToolAsync(["token", "--key", DevIssuerKey, .. arguments]);

    /// <summary>Starts one more node that waits to be added; returns it and its member record (id=raft=http).</summary>
    public (NodeProcess Node, string Member) StartJoiningNode(string nodeId)
    {
        var (http, raft) = (NodeProcess.FreePort(), NodeProcess.FreePort());
        var member = $"{nodeId}=127.0.0.1:{raft}=http://127.0.0.1:{http}";
        var node = new NodeProcess(nodeId, new Uri($"http://127.0.0.1:{http}"), Path.Combine(root, nodeId), [.. members, member], ["--join"]);
        nodes.Add(node);
        node.Start();
        return (node, member);
    }

    public HttpClient Client { get; } = new() { Timeout = TimeSpan.FromSeconds(40) };

    public async Task<LedgerStatus?> TryStatusAsync(NodeProcess node, CancellationToken token)
    {
        try
        {
            return await Client.GetFromJsonAsync<LedgerStatus>(new Uri(node.HttpUrl, "/ledger/status"), Json, token);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !token.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Waits until the node answers on /healthz.</summary>
    public Task WaitForHealthAsync(NodeProcess node, CancellationToken token) => WaitUntilAsync(async () =>
    {
        try
        {
            using var response = await Client.GetAsync(new Uri(node.HttpUrl, "/healthz"), token);
            return response.IsSuccessStatusCode ? node : null;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }, token);

    /// <summary>Waits until every running node agrees on one leader.</summary>
    public Task<NodeProcess> WaitForLeaderAsync(CancellationToken token) => WaitUntilAsync(async () =>
    {
        var statuses = await Task.WhenAll(Nodes.Where(n => n.IsRunning).Select(n => TryStatusAsync(n, token)));
        var leaders = statuses.Select(s => s?.LeaderId).Distinct().ToList();
        return leaders is [{ } leader] ? Nodes.Single(n => n.NodeId == leader) : null;
    }, token);

    /// <summary>Waits until every running node has applied at least <paramref name="minTreeSize"/> entries and all roots agree.</summary>
    public Task<LedgerStatus[]> WaitForConvergenceAsync(long minTreeSize, CancellationToken token) => WaitUntilAsync(async () =>
    {
        var statuses = await Task.WhenAll(Nodes.Where(n => n.IsRunning).Select(n => TryStatusAsync(n, token)));
        var known = statuses.OfType<LedgerStatus>().ToArray();
        return known.Length == statuses.Length
               && known.All(s => s.TreeSize >= minTreeSize && s.AppliedIndex >= s.CommitIndex)
               && known.Select(s => (s.TreeSize, s.Root)).Distinct().Count() == 1
            ? known
            : null;
    }, token);

    /// <summary>Appends a NodeRemoved entry naming <paramref name="id"/> and returns its index; fails the test on any other answer than 201.</summary>
    public async Task<long> AppendAsync(NodeProcess node, string id, CancellationToken token)
    {
        using var response = await Client.PostAsJsonAsync(new Uri(node.HttpUrl, "/ledger/entries"),
            new { kind = "NodeRemoved", fields = new Dictionary<string, string> { ["nodeId"] = id } }, token);
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("index").GetInt64();
    }

    public async Task<List<JsonElement>> ReadAllEntriesAsync(NodeProcess node, long treeSize, CancellationToken token)
    {
        var entries = new List<JsonElement>();
        while (entries.Count < treeSize)
        {
            var page = await Client.GetFromJsonAsync<JsonElement>(new Uri(node.HttpUrl, $"/ledger/entries?from={entries.Count + 1}&count=1000"), token);
            var items = page.GetProperty("entries").EnumerateArray().ToList();
            Assert.NotEmpty(items);
            entries.AddRange(items.Take((int)(treeSize - entries.Count)));
        }

        return entries;
    }

    private async Task<T> WaitUntilAsync<T>(Func<Task<T?>> probe, CancellationToken token)
        where T : class
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        do
        {
            foreach (var node in Nodes)
                node.ThrowIfCrashed();
            if (await probe() is { } result)
                return result;
        }
        while (await timer.WaitForNextTickAsync(token));
        throw new OperationCanceledException(token);
    }

    public string Diagnostics() => string.Join("\n", Nodes.Select(n => $"--- {n.NodeId} ---\n{n.Output}"));

    public void Dispose()
    {
        foreach (var node in Nodes)
            node.Dispose();
        Client.Dispose();
        try
        {
            Directory.Delete(root, recursive: true);
        }
        catch (IOException)
        {
            // A killed process can leave a file handle closing for a moment; the temp folder is harmless.
        }
    }
}
