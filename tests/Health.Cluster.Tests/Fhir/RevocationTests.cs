using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Health.Cluster.Tests.Fhir;

/// <summary>Revocation is linearizable: three node processes, one patient held by all three.</summary>
public sealed class RevocationTests
{
    private const int MaxReadsPerReader = 600;

    [SyntheaFact]
    public async Task No_read_ordered_after_a_committed_revoke_is_permitted_on_any_node()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var token = timeout.Token;
        using var cluster = new LedgerCluster();
        await cluster.WaitForLeaderAsync(token);
        var client = cluster.Client;
        var bundle = File.ReadAllBytes(SyntheaData.PatientBundles.First());
        var operatorToken = await cluster.MintTokenAsync("--role", "operator");
        var localIds = new List<string>();
        foreach (var node in cluster.Nodes)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(node.HttpUrl, "/fhir")) { Content = new ByteArrayContent(bundle) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/fhir+json");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", operatorToken);
            using var posted = await client.SendAsync(request, token);
            Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
            var response = await posted.Content.ReadFromJsonAsync<JsonElement>(token);
            localIds.Add(response.GetProperty("entry").EnumerateArray()
                .Select(e => e.GetProperty("response").GetProperty("location").GetString()!)
                .First(l => l.StartsWith("Patient/", StringComparison.Ordinal)).Split('/')[1]);
        }

        var reader = await cluster.MintTokenAsync("--role", "clinician", "--org", "clinic-north");
        var patientToken = await cluster.MintTokenAsync("--role", "patient", "--patient", localIds[0]);
        var consentId = await GrantAsync(client, cluster.Nodes[0], patientToken, localIds[0], token);

        var outcomes = new ConcurrentBag<(long Index, HttpStatusCode Status)>();
        var revokeIndex = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var permitsSeen = 0;
        async Task ReadLoopAsync(NodeProcess node, string id)
        {
            var afterRevoke = 0;
            for (var i = 0; i < MaxReadsPerReader && afterRevoke < 40; i++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(node.HttpUrl, $"/fhir/Patient/{id}"));
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", reader);
                using var response = await client.SendAsync(request, token);
                Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Forbidden, $"{node.NodeId}: {(int)response.StatusCode}");
                outcomes.Add((long.Parse(response.Headers.GetValues("X-Ledger-Index").Single(), CultureInfo.InvariantCulture), response.StatusCode));
                if (response.StatusCode == HttpStatusCode.OK)
                    Interlocked.Increment(ref permitsSeen);
                if (revokeIndex.Task.IsCompleted)
                    afterRevoke++;
            }
        }

        var readers = new[] { ReadLoopAsync(cluster.Nodes[1], localIds[1]), ReadLoopAsync(cluster.Nodes[2], localIds[2]) };
        while (Volatile.Read(ref permitsSeen) < 20 && !readers.All(r => r.IsCompleted))
            await Task.WhenAny([Task.Delay(10, token), .. readers]);
        revokeIndex.SetResult(await RevokeAsync(client, cluster.Nodes[0], patientToken, localIds[0], consentId, token));
        await Task.WhenAll(readers);

        var revoke = await revokeIndex.Task;
        var ordered = outcomes.OrderBy(o => o.Index).ToList();
        Assert.DoesNotContain(ordered, o => o.Index > revoke && o.Status == HttpStatusCode.OK);
        Assert.DoesNotContain(ordered, o => o.Index < revoke && o.Status == HttpStatusCode.Forbidden);
        Assert.Contains(ordered, o => o.Index > revoke);
        Assert.Contains(ordered, o => o.Index < revoke);
        Assert.Equal(ordered.Count, ordered.Select(o => o.Index).Distinct().Count());
        await AssertEveryNodeDecidedAlikeAsync(cluster, ordered.Where((_, i) => i % 10 == 0).Append(ordered[^1]).ToList(), token);
    }

    // Each node computed the decision itself when applying the entry; all must agree, and agree
    // with what the requester was told.
    private static async Task AssertEveryNodeDecidedAlikeAsync(LedgerCluster cluster, IReadOnlyList<(long Index, HttpStatusCode Status)> outcomes, CancellationToken token)
    {
        var auditor = await cluster.MintTokenAsync("--role", "auditor");
        await cluster.WaitForConvergenceAsync(outcomes.Max(o => o.Index), token);
        foreach (var (index, status) in outcomes)
        {
            var decisions = new List<string>();
            foreach (var node in cluster.Nodes)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(node.HttpUrl, $"/ledger/access/{index}"));
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", auditor);
                using var response = await cluster.Client.SendAsync(request, token);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                decisions.Add(await response.Content.ReadAsStringAsync(token));
            }

            var decision = Assert.Single(decisions.Distinct(StringComparer.Ordinal));
            Assert.Contains($"\"permitted\":{(status == HttpStatusCode.OK ? "true" : "false")}", decision, StringComparison.Ordinal);
        }
    }

    private static async Task<string> GrantAsync(HttpClient client, NodeProcess node, string patientToken, string patient, CancellationToken token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(node.HttpUrl, "/fhir/Consent"))
        {
            Content = new StringContent(ConsentTests.ConsentJson(patient, "clinic-north"), Encoding.UTF8, "application/fhir+json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", patientToken);
        using var response = await client.SendAsync(request, token);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("id").GetString()!;
    }

    private static async Task<long> RevokeAsync(HttpClient client, NodeProcess node, string patientToken, string patient, string consentId, CancellationToken token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(node.HttpUrl, $"/fhir/Consent/{consentId}"))
        {
            Content = new StringContent(ConsentTests.ConsentJson(patient, "clinic-north", "inactive", consentId), Encoding.UTF8, "application/fhir+json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", patientToken);
        using var response = await client.SendAsync(request, token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return long.Parse(response.Headers.GetValues("X-Ledger-Index").Single(), CultureInfo.InvariantCulture);
    }
}
