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

    private readonly string[] shared;

    public LedgerCluster(int size = 3, params string[] extraArguments)
        : this(size, tls: false, extraArguments)
    {
    }

    private LedgerCluster(int size, bool tls, string[] extraArguments)
    {
        Tls = tls;
        if (tls)
        {
            Health.Ledger.Security.ConsortiumCertificates.EnsureAuthority(AuthorityFolder);
            Client = new HttpClient(TrustingHandler(Path.Combine(AuthorityFolder, Health.Ledger.Security.ConsortiumCertificates.AuthorityFile)))
            {
                Timeout = TimeSpan.FromSeconds(40),
            };
        }

        var ports = Enumerable.Range(0, size).Select(_ => (Http: NodeProcess.FreePort(), Raft: NodeProcess.FreePort())).ToList();
        members = ports.Select((p, i) => $"node{i + 1}=127.0.0.1:{p.Raft}={Scheme}://127.0.0.1:{p.Http}").ToList();
        shared = ["--dev-issuer-key", DevIssuerKey, "--pseudonym-key", Path.Combine(root, "pseudonym.key"), .. extraArguments];
        nodes = ports.Select((p, i) => CreateNode($"node{i + 1}", p.Http, members, [])).ToList();
        foreach (var node in nodes)
            node.Start();
    }

    /// <summary>A cluster whose members speak mutual TLS with certificates from a consortium CA made for it.</summary>
    public static LedgerCluster WithTls(int size = 3, params string[] extraArguments) => new(size, tls: true, extraArguments);

    /// <summary>Whether the members speak mutual TLS.</summary>
    public bool Tls { get; }

    /// <summary>The folder of the cluster's consortium CA (certificate and key).</summary>
    public string AuthorityFolder => Path.Combine(root, "ca");

    /// <summary>The certificate and key files of a node of this cluster (TLS clusters).</summary>
    public (string Certificate, string Key) CertificateOf(string nodeId)
    {
        var folder = Path.Combine(root, "certs");
        var certificate = Path.Combine(folder, $"{nodeId}.pem");
        return File.Exists(certificate)
            ? (certificate, Path.Combine(folder, $"{nodeId}.key"))
            : Health.Ledger.Security.ConsortiumCertificates.IssueNode(AuthorityFolder, folder, nodeId, nodeId, [System.Net.IPAddress.Loopback], ["localhost"]);
    }

    private string Scheme => Tls ? "https" : "http";

    private NodeProcess CreateNode(string nodeId, int httpPort, IEnumerable<string> memberList, string[] extra)
    {
        string[] tlsArguments = [];
        if (Tls)
        {
            var (certificate, key) = CertificateOf(nodeId);
            tlsArguments = ["--tls-cert", certificate, "--tls-key", key, "--tls-ca", Path.Combine(AuthorityFolder, Health.Ledger.Security.ConsortiumCertificates.AuthorityFile)];
        }

        return new NodeProcess(nodeId, new Uri($"{Scheme}://127.0.0.1:{httpPort}"), Path.Combine(root, nodeId), memberList, [.. shared, .. tlsArguments, .. extra]);
    }

    /// <summary>An HTTP handler that trusts servers whose certificate chains to the consortium CA in <paramref name="authorityFile"/>.</summary>
    public static SocketsHttpHandler TrustingHandler(string authorityFile)
    {
        var authority = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificateFromFile(authorityFile);
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            certificate is System.Security.Cryptography.X509Certificates.X509Certificate2 server && Health.Ledger.Security.ConsortiumIdentity.ChainsTo(server, authority);
        return handler;
    }

    public IReadOnlyList<NodeProcess> Nodes => nodes;

    /// <summary>The founding members, id=ip:raftPort=url.</summary>
    public IReadOnlyList<string> Members => members;

    /// <summary>The dev token issuer's key every node of this cluster trusts.</summary>
    public string DevIssuerKey => Path.Combine(root, "dev-issuer.pem");

    /// <summary>A bearer token from the cluster's dev issuer, made with <c>health-node token</c>.</summary>
    public Task<string> MintTokenAsync(params string[] arguments)
        => NodeProcess.RunToolAsync(["token", "--key", DevIssuerKey, .. arguments]);

    /// <summary>Starts one more node that waits to be added; returns it and its member record (id=raft=http).</summary>
    public (NodeProcess Node, string Member) StartJoiningNode(string nodeId)
    {
        var (http, raft) = (NodeProcess.FreePort(), NodeProcess.FreePort());
        var member = $"{nodeId}=127.0.0.1:{raft}={Scheme}://127.0.0.1:{http}";
        var node = CreateNode(nodeId, http, [.. members, member], ["--join"]);
        nodes.Add(node);
        node.Start();
        return (node, member);
    }

    public HttpClient Client { get; } = new() { Timeout = TimeSpan.FromSeconds(40) };

    /// <summary>
    /// Admits a node through governance: proposed by node1's operator, approved by the operators
    /// of the first <paramref name="approvals"/> running members. Returns the proposal index.
    /// </summary>
    public async Task<long> ProposeAndApproveAsync(string action, string nodeId, string fingerprint, int approvals, CancellationToken token)
    {
        var proposer = Nodes[0];
        using var proposal = new HttpRequestMessage(HttpMethod.Post, new Uri(proposer.HttpUrl, "/ledger/governance/proposals"))
        {
            Content = JsonContent.Create(new { action, nodeId, organization = nodeId, certificateSha256 = fingerprint }),
        };
        proposal.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", await MintTokenAsync("--role", "operator", "--org", proposer.NodeId));
        using var proposed = await Client.SendAsync(proposal, token);
        if (proposed.StatusCode != System.Net.HttpStatusCode.Created)
            throw new InvalidOperationException($"proposal: {(int)proposed.StatusCode} {await proposed.Content.ReadAsStringAsync(token)}");
        var index = (await proposed.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("index").GetInt64();
        var lastVoter = proposer;
        foreach (var voter in Nodes.Where(n => n.IsRunning).Take(approvals))
        {
            lastVoter = voter;
            using var vote = new HttpRequestMessage(HttpMethod.Post, new Uri(voter.HttpUrl, $"/ledger/governance/proposals/{index}/votes"));
            vote.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", await MintTokenAsync("--role", "operator", "--org", voter.NodeId));
            using var voted = await Client.SendAsync(vote, token);
            if (voted.StatusCode != System.Net.HttpStatusCode.OK)
                throw new InvalidOperationException($"vote at {voter.NodeId}: {(int)voted.StatusCode} {await voted.Content.ReadAsStringAsync(token)}");
        }

        // An answer means applied where it was posted; the caller goes on to ask every member.
        var size = (await TryStatusAsync(lastVoter, token))?.TreeSize ?? index;
        await WaitForConvergenceAsync(size, token);
        return index;
    }

    /// <summary>Posts the first sample patient's bundle to a node as an operator; returns the patient's id there.</summary>
    public async Task<string> IngestFirstPatientAsync(NodeProcess node, CancellationToken token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(node.HttpUrl, "/fhir"))
        {
            Content = new ByteArrayContent(await File.ReadAllBytesAsync(Fhir.SyntheaData.PatientBundles.First(), token)),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/fhir+json");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", await MintTokenAsync("--role", "operator"));
        using var posted = await Client.SendAsync(request, token);
        if (posted.StatusCode != System.Net.HttpStatusCode.OK)
            Assert.Fail($"{node.NodeId} answered the operator's bundle with {(int)posted.StatusCode}: {await posted.Content.ReadAsStringAsync(token)}{Environment.NewLine}{Diagnostics()}");
        var response = await posted.Content.ReadFromJsonAsync<JsonElement>(token);
        return response.GetProperty("entry").EnumerateArray()
            .Select(e => e.GetProperty("response").GetProperty("location").GetString()!)
            .First(l => l.StartsWith("Patient/", StringComparison.Ordinal)).Split('/')[1];
    }

    /// <summary>Sends a FHIR request to a node with a bearer token (and a FHIR JSON body, when given).</summary>
    public async Task<HttpResponseMessage> SendFhirAsync(HttpMethod method, NodeProcess node, string relative, string bearer, string? body, CancellationToken token)
    {
        using var request = new HttpRequestMessage(method, new Uri(node.HttpUrl, "/fhir/" + relative));
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
        if (body is not null)
            request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/fhir+json");
        return await Client.SendAsync(request, token);
    }

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

    /// <summary>
    /// Waits until every running node agrees on one leader; with <paramref name="except"/> (a frozen
    /// node, which would not answer) every running node but that one, on a leader other than it.
    /// </summary>
    public Task<NodeProcess> WaitForLeaderAsync(CancellationToken token, NodeProcess? except = null) => WaitUntilAsync(async () =>
    {
        var statuses = await Task.WhenAll(Nodes.Where(n => n.IsRunning && n != except).Select(n => TryStatusAsync(n, token)));
        var leaders = statuses.Select(s => s?.LeaderId).Distinct().ToList();
        return leaders is [{ } leader] && leader != except?.NodeId ? Nodes.Single(n => n.NodeId == leader) : null;
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

    /// <summary>Appends an OperatorNote entry saying <paramref name="id"/> and returns its index; fails the test on any other answer than 201.</summary>
    public async Task<long> AppendAsync(NodeProcess node, string id, CancellationToken token)
    {
        using var response = await Client.PostAsJsonAsync(new Uri(node.HttpUrl, "/ledger/entries"),
            new { kind = "OperatorNote", fields = new Dictionary<string, string> { ["note"] = id } }, token);
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

    /// <summary>
    /// <see cref="Diagnostics"/> with what each running node says of itself now (its ledger status
    /// and its readiness, with the reasons it is not ready), for a failure that left the group stuck.
    /// </summary>
    public async Task<string> DiagnosticsWithStatusAsync()
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        var states = new List<string>();
        foreach (var node in Nodes.Where(n => n.IsRunning))
        {
            foreach (var path in new[] { "/ledger/status", "/readyz" })
            {
                try
                {
                    using var response = await client.GetAsync(new Uri(node.HttpUrl, path));
                    states.Add($"{node.NodeId} {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    states.Add($"{node.NodeId} {path}: no answer ({e.GetType().Name})");
                }
            }
        }

        return $"{string.Join("\n", states)}\n{Diagnostics()}";
    }

    /// <summary>Leaves the nodes' data directories behind when disposed, for a failure to be examined.</summary>
    public bool KeepData { get; set; }

    public void Dispose()
    {
        foreach (var node in Nodes)
            node.Dispose();
        Client.Dispose();
        if (KeepData)
            return;
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
