using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Health.Ledger.Checkpoints;
using Health.Ledger.Entries;
using Health.Ledger.Merkle;

namespace Health.Cluster.Tests;

/// <summary>One running three-node cluster shared by the API tests.</summary>
public sealed class RunningCluster : IAsyncLifetime
{
    public LedgerCluster Cluster { get; } = new();

    public NodeProcess Leader { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        Leader = await Cluster.WaitForLeaderAsync(timeout.Token);
    }

    public Task DisposeAsync()
    {
        Cluster.Dispose();
        return Task.CompletedTask;
    }
}

public sealed class LedgerApiTests(RunningCluster running) : IClassFixture<RunningCluster>
{
    private static readonly object ValidEntry = new { kind = "OperatorNote", fields = new Dictionary<string, string> { ["note"] = "node9 maintenance", ["topic"] = "maintenance" } };
    private readonly LedgerCluster cluster = running.Cluster;

    private static CancellationToken Token => new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token;

    private NodeProcess Follower => cluster.Nodes.First(n => n != running.Leader);

    [Fact]
    public async Task Append_through_a_follower_returns_index_and_every_node_serves_the_entry()
    {
        using var response = await cluster.Client.PostAsJsonAsync(new Uri(Follower.HttpUrl, "/ledger/entries"), ValidEntry, Token);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var index = (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("index").GetInt64();
        Assert.Equal(index.ToString(System.Globalization.CultureInfo.InvariantCulture), response.Headers.GetValues("X-Ledger-Index").Single());
        Assert.Equal($"/ledger/entries/{index}", response.Headers.Location?.OriginalString);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(response.Content.Headers.ContentLength, (await response.Content.ReadAsByteArrayAsync(Token)).Length);
        await cluster.WaitForConvergenceAsync(index, Token);
        foreach (var node in cluster.Nodes)
        {
            var entry = await cluster.Client.GetFromJsonAsync<JsonElement>(new Uri(node.HttpUrl, $"/ledger/entries/{index}"), Token);
            Assert.Equal("node9 maintenance", entry.GetProperty("fields").GetProperty("note").GetString());
        }
    }

    [Fact]
    public async Task Receipt_verifies_offline_with_the_published_signing_keys()
    {
        using var response = await cluster.Client.PostAsJsonAsync(new Uri(Follower.HttpUrl, "/ledger/entries"), ValidEntry, Token);
        var index = (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("index").GetInt64();

        var receiptJson = await WaitForReceiptAsync(Follower, index);
        var trusted = new Dictionary<string, ECDsa>();
        foreach (var node in cluster.Nodes)
        {
            var keys = await cluster.Client.GetFromJsonAsync<Dictionary<string, string>>(new Uri(node.HttpUrl, "/ledger/keys"), Token);
            foreach (var (keyId, pem) in keys!)
            {
                var key = ECDsa.Create();
                key.ImportFromPem(pem);
                trusted[keyId] = key;
            }
        }

        var receipt = ParseReceipt(receiptJson);
        Assert.Null(receipt.Verify(trusted));
        Assert.Equal(index, LedgerEntry.FromCanonicalBytes(receipt.EntryBytes).Index);
        var tampered = (byte[])receipt.EntryBytes.Clone();
        tampered[^1] ^= 1;
        Assert.NotNull((receipt with { EntryBytes = tampered }).Verify(trusted));
    }

    [Fact]
    public async Task Consistency_proof_links_an_older_root_to_the_current_one()
    {
        var status = (await cluster.TryStatusAsync(Follower, Token))!;
        using (await cluster.Client.PostAsJsonAsync(new Uri(Follower.HttpUrl, "/ledger/entries"), ValidEntry, Token))
        {
        }

        var proof = await cluster.Client.GetFromJsonAsync<JsonElement>(new Uri(Follower.HttpUrl, $"/ledger/consistency?from={long.Max(1, status.TreeSize)}&to={status.TreeSize + 1}"), Token);
        var parsed = new ConsistencyProof(proof.GetProperty("firstSize").GetInt64(), proof.GetProperty("secondSize").GetInt64(),
            proof.GetProperty("path").EnumerateArray().Select(p => Convert.FromHexString(p.GetString()!)).ToList());
        Assert.True(parsed.Verify(Convert.FromHexString(proof.GetProperty("firstRoot").GetString()!), Convert.FromHexString(proof.GetProperty("secondRoot").GetString()!)));
    }

    [Theory]
    [InlineData("{not json", "application/json", 400)]
    [InlineData("[]", "application/json", 400)]
    [InlineData("{\"kind\":\"NoSuchKind\",\"fields\":{}}", "application/json", 400)]
    [InlineData("{\"kind\":\"OperatorNote\",\"fields\":{}}", "application/json", 400)]
    [InlineData("{\"kind\":\"OperatorNote\",\"fields\":{\"note\":5}}", "application/json", 400)]
    [InlineData("{\"kind\":\"OperatorNote\",\"fields\":{\"note\":\"a\",\"extra\":\"b\"}}", "application/json", 400)]
    [InlineData("{\"kind\":\"Checkpoint\",\"fields\":{\"treeSize\":\"1\",\"root\":\"00\",\"signer\":\"x\",\"keyId\":\"y\",\"signature\":\"z\"}}", "application/json", 400)]
    [InlineData("{\"kind\":\"OperatorNote\",\"fields\":{\"note\":\"a\"}}", "text/plain", 415)]
    public async Task Bad_appends_get_an_OperationOutcome_and_append_nothing(string body, string mediaType, int status)
    {
        var before = (await cluster.TryStatusAsync(running.Leader, Token))!.TreeSize;
        using var content = new StringContent(body, Encoding.UTF8, mediaType);
        using var response = await cluster.Client.PostAsync(new Uri(Follower.HttpUrl, "/ledger/entries"), content, Token);
        await AssertOperationOutcomeAsync(response, status);
        // Only the leader's own checkpoints may have been added meanwhile.
        var after = (await cluster.TryStatusAsync(running.Leader, Token))!.TreeSize;
        var added = (await cluster.ReadAllEntriesAsync(running.Leader, after, Token)).Skip((int)before);
        Assert.All(added, e => Assert.Equal("Checkpoint", e.GetProperty("kind").GetString()));
    }

    [Fact]
    public async Task A_huge_append_body_is_refused_with_413()
    {
        var huge = JsonSerializer.Serialize(new { kind = "OperatorNote", fields = new Dictionary<string, string> { ["note"] = new string('a', 200_000) } });
        using var content = new StringContent(huge, Encoding.UTF8, "application/json");
        using var response = await cluster.Client.PostAsync(new Uri(Follower.HttpUrl, "/ledger/entries"), content, Token);
        await AssertOperationOutcomeAsync(response, 413);
    }

    [Theory]
    [InlineData("/ledger/entries/999999999", 404)]
    [InlineData("/ledger/entries/0", 404)]
    [InlineData("/ledger/entries/999999999/receipt", 404)]
    [InlineData("/ledger/no-such-route", 404)]
    [InlineData("/ledger/consistency?from=1&to=999999999", 400)]
    [InlineData("/ledger/consistency?from=0&to=1", 400)]
    [InlineData("/ledger/entries?from=1&count=100000", 400)]
    public async Task Reads_out_of_range_get_an_OperationOutcome(string path, int status)
    {
        using var response = await cluster.Client.GetAsync(new Uri(Follower.HttpUrl, path), Token);
        await AssertOperationOutcomeAsync(response, status);
    }

    private async Task<JsonElement> WaitForReceiptAsync(NodeProcess node, long index)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        var token = Token;
        try
        {
            while (true)
            {
                await timer.WaitForNextTickAsync(token);
                using var response = await cluster.Client.GetAsync(new Uri(node.HttpUrl, $"/ledger/entries/{index}/receipt"), token);
                if (response.StatusCode == HttpStatusCode.OK)
                    return await response.Content.ReadFromJsonAsync<JsonElement>(token);
                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            }
        }
        catch (OperationCanceledException e)
        {
            using var probe = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var states = new List<string>();
            foreach (var member in cluster.Nodes)
            {
                var status = await cluster.TryStatusAsync(member, probe.Token);
                using var latest = await cluster.Client.GetAsync(new Uri(member.HttpUrl, "/ledger/checkpoints/latest"), probe.Token);
                states.Add($"{member.NodeId}: {System.Text.Json.JsonSerializer.Serialize(status)}; latest checkpoint {(int)latest.StatusCode} {await latest.Content.ReadAsStringAsync(probe.Token)}");
            }

            throw new InvalidOperationException($"No receipt for entry {index} at {node.NodeId} within a minute.\n{string.Join('\n', states)}\n{cluster.Diagnostics()}", e);
        }
    }

    private static Receipt ParseReceipt(JsonElement json)
    {
        var checkpoint = json.GetProperty("checkpoint");
        var signed = new SignedCheckpoint(checkpoint.GetProperty("treeSize").GetInt64(), Convert.FromHexString(checkpoint.GetProperty("root").GetString()!),
            checkpoint.GetProperty("signer").GetString()!, checkpoint.GetProperty("keyId").GetString()!, Convert.FromBase64String(checkpoint.GetProperty("signature").GetString()!));
        var proof = new InclusionProof(json.GetProperty("leafIndex").GetInt64(), signed.TreeSize,
            json.GetProperty("path").EnumerateArray().Select(p => Convert.FromHexString(p.GetString()!)).ToList());
        return new Receipt(Convert.FromBase64String(json.GetProperty("entry").GetString()!), proof, signed);
    }

    private static async Task AssertOperationOutcomeAsync(HttpResponseMessage response, int status)
    {
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/fhir+json", response.Content.Headers.ContentType?.MediaType);
        var outcome = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("OperationOutcome", outcome.GetProperty("resourceType").GetString());
        Assert.False(string.IsNullOrEmpty(outcome.GetProperty("issue")[0].GetProperty("diagnostics").GetString()));
    }
}
