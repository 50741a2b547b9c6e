using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Health.Cluster.Tests.Fhir;

namespace Health.Cluster.Tests.Federation;

/// <summary>
/// A patient held by node1 and node3; a clinician of another organisation asks node2, which holds
/// nothing about them. Three node processes with distinct certificates, mutual TLS between them.
/// </summary>
public sealed class CrossProviderTests
{
    private const string Ssn = "http://hl7.org/fhir/sid/us-ssn";

    private static async Task<JsonElement> GetAsync(LedgerCluster cluster, Uri uri, string token, HttpStatusCode expected, CancellationToken cancel)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await cluster.Client.SendAsync(request, cancel);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(cancel);
        Assert.True(response.StatusCode == expected, $"{uri}: {(int)response.StatusCode} {body}");
        return body;
    }

    private static List<string> Matches(JsonElement bundle) => bundle.TryGetProperty("entry", out var entries)
        ? entries.EnumerateArray().Where(e => e.GetProperty("search").GetProperty("mode").GetString() == "match").Select(e => e.GetProperty("fullUrl").GetString()!).ToList()
        : [];

    private static List<string> Outcomes(JsonElement bundle) => bundle.TryGetProperty("entry", out var entries)
        ? entries.EnumerateArray().Where(e => e.GetProperty("search").GetProperty("mode").GetString() == "outcome").Select(e => e.GetProperty("resource").GetRawText()).ToList()
        : [];

    // Every page of a searchset, following next links.
    private static async Task<List<string>> AllMatchesAsync(LedgerCluster cluster, Uri first, string token, CancellationToken cancel)
    {
        var matches = new List<string>();
        for (Uri? next = first; next is not null;)
        {
            var page = await GetAsync(cluster, next, token, HttpStatusCode.OK, cancel);
            matches.AddRange(Matches(page));
            var link = page.TryGetProperty("link", out var links)
                ? links.EnumerateArray().FirstOrDefault(l => l.GetProperty("relation").GetString() == "next")
                : default;
            next = link.ValueKind == JsonValueKind.Undefined ? null : new Uri(link.GetProperty("url").GetString()!);
        }

        return matches;
    }

    private static async Task<string> IngestAsync(LedgerCluster cluster, NodeProcess node, string file, string operatorToken, CancellationToken cancel)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(node.HttpUrl, "/fhir")) { Content = new ByteArrayContent(File.ReadAllBytes(file)) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/fhir+json");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", operatorToken);
        using var response = await cluster.Client.SendAsync(request, cancel);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(cancel);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{Path.GetFileName(file)} at {node.NodeId}: {body}");
        return body.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("response").GetProperty("location").GetString()!)
            .FirstOrDefault(l => l.StartsWith("Patient/", StringComparison.Ordinal))?.Split('/')[1] ?? string.Empty;
    }

    [SyntheaFact]
    public async Task Clinician_at_another_member_gets_every_custodians_records_only_with_consent()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var cancel = timeout.Token;
        using var cluster = LedgerCluster.WithTls();
        try
        {
            await cluster.WaitForLeaderAsync(cancel);
            var (node1, node2, node3) = (cluster.Nodes[0], cluster.Nodes[1], cluster.Nodes[2]);
            var operatorToken = await cluster.MintTokenAsync("--role", "operator");
            var bundleFile = SyntheaData.PatientBundles.First();
            var ssn = SyntheaData.Resources(bundleFile).First(r => r.GetProperty("resourceType").GetString() == "Patient")
                .GetProperty("identifier").EnumerateArray().First(i => i.GetProperty("system").GetString() == Ssn).GetProperty("value").GetString()!;
            var localIds = new Dictionary<string, string>();
            foreach (var custodian in new[] { node1, node3 })
            {
                foreach (var file in SyntheaData.OrganizationAndPractitionerBundles)
                    await IngestAsync(cluster, custodian, file, operatorToken, cancel);
                localIds[custodian.NodeId] = await IngestAsync(cluster, custodian, bundleFile, operatorToken, cancel);
            }

            var visitor = await cluster.MintTokenAsync("--role", "clinician", "--org", "clinic-b", "--practitioner", "p-b");
            var query = new Uri(node2.HttpUrl, $"/fhir/Patient/$everything?identifier={Ssn}|{ssn}&_count=50");
            await GetAsync(cluster, query, visitor, HttpStatusCode.Forbidden, cancel);

            var patientToken = await cluster.MintTokenAsync("--role", "patient", "--patient", localIds[node1.NodeId]);
            using (var grant = new HttpRequestMessage(HttpMethod.Post, new Uri(node1.HttpUrl, "/fhir/Consent"))
            {
                Content = new StringContent(ConsentTests.ConsentJson(localIds[node1.NodeId], "clinic-b"), Encoding.UTF8, "application/fhir+json"),
            })
            {
                grant.Headers.Authorization = new AuthenticationHeaderValue("Bearer", patientToken);
                using var granted = await cluster.Client.SendAsync(grant, cancel);
                Assert.Equal(HttpStatusCode.Created, granted.StatusCode);
            }

            // What each custodian's own clinicians see there: the reference for the merged result.
            var alone = new List<string>();
            foreach (var custodian in new[] { node1, node3 })
            {
                var own = await cluster.MintTokenAsync("--role", "clinician", "--org", custodian.NodeId);
                var local = await GetAsync(cluster, new Uri(custodian.HttpUrl, $"/fhir/Patient/{localIds[custodian.NodeId]}/$everything?_count=500"), own, HttpStatusCode.OK, cancel);
                var matches = Matches(local).Where(u => u.StartsWith(custodian.HttpUrl.ToString(), StringComparison.Ordinal)).ToList();
                Assert.NotEmpty(matches);
                alone.AddRange(matches);
            }

            var merged = await AllMatchesAsync(cluster, query, visitor, cancel);
            Assert.Equal(alone.Order(StringComparer.Ordinal), merged.Order(StringComparer.Ordinal));

            // A search naming the patient at a custodian covers the other custodian too, page by page.
            var observations = await AllMatchesAsync(cluster, new Uri(node1.HttpUrl, $"/fhir/Observation?patient={localIds[node1.NodeId]}&_count=40"), visitor, cancel);
            Assert.Equal(alone.Where(u => u.Contains("/fhir/Observation/", StringComparison.Ordinal)).Order(StringComparer.Ordinal), observations.Order(StringComparer.Ordinal));

            // A permit works only for the member it was issued to, at the custodian it names.
            using var firstPage = new HttpRequestMessage(HttpMethod.Get, query);
            firstPage.Headers.Authorization = new AuthenticationHeaderValue("Bearer", visitor);
            using var answered = await cluster.Client.SendAsync(firstPage, cancel);
            var permits = answered.Headers.GetValues("X-Ledger-Index").Single().Split(',').Select(long.Parse).ToList();
            var auditor = await cluster.MintTokenAsync("--role", "auditor");
            var permitAtNode1 = 0L;
            foreach (var index in permits)
            {
                var decision = await GetAsync(cluster, new Uri(node2.HttpUrl, $"/ledger/access/{index}"), auditor, HttpStatusCode.OK, cancel);
                if (decision.GetProperty("custodian").GetString() == node1.NodeId)
                    permitAtNode1 = index;
            }

            var patientKey = (await GetAsync(cluster, new Uri(node2.HttpUrl, $"/ledger/access/{permitAtNode1}"), auditor, HttpStatusCode.OK, cancel)).GetProperty("patientKey").GetString()!;
            Assert.Equal(HttpStatusCode.OK, await ReplayAsync(cluster, node1, "node2", patientKey, permitAtNode1, cancel));
            Assert.Equal(HttpStatusCode.Forbidden, await ReplayAsync(cluster, node1, "node3", patientKey, permitAtNode1, cancel));
            Assert.Equal(HttpStatusCode.Forbidden, await ReplayAsync(cluster, node3, "node2", patientKey, permitAtNode1, cancel));
            Assert.Equal(HttpStatusCode.Forbidden, await ReplayAsync(cluster, node1, "node9", patientKey, permitAtNode1, cancel));

            // With node3 down the answer is partial and says so.
            node3.Kill();
            var partial = await GetAsync(cluster, new Uri(node2.HttpUrl, $"/fhir/Patient/$everything?identifier={Ssn}|{ssn}&_count=500"), visitor, HttpStatusCode.OK, cancel);
            Assert.Equal(alone.Where(u => u.StartsWith(node1.HttpUrl.ToString(), StringComparison.Ordinal)).Order(StringComparer.Ordinal), Matches(partial).Order(StringComparer.Ordinal));
            Assert.Contains(Outcomes(partial), o => o.Contains("node3", StringComparison.Ordinal));
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(cluster.Diagnostics(), e);
        }
    }

    // A custodian's answer to a member presenting its own certificate and a permit index.
    private static async Task<HttpStatusCode> ReplayAsync(LedgerCluster cluster, NodeProcess custodian, string caller, string patientKey, long permit, CancellationToken cancel)
    {
        var (certificateFile, keyFile) = cluster.CertificateOf(caller);
        using var certificate = X509CertificateLoader.LoadPkcs12(X509Certificate2.CreateFromPemFile(certificateFile, keyFile).Export(X509ContentType.Pkcs12), null);
        using var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        handler.SslOptions.ClientCertificates = [certificate];
        using var client = new HttpClient(handler);
        using var response = await client.GetAsync(new Uri(custodian.HttpUrl, $"/internal/records?patientKey={patientKey}&permit={permit.ToString(CultureInfo.InvariantCulture)}"), cancel);
        return response.StatusCode;
    }
}
