using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Health.Cluster.Tests.Fhir;

public sealed class CryptoShredTests
{
    [SyntheaFact]
    public async Task Erased_patient_reads_are_gone_and_drop_out_of_searches()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var token = timeout.Token;
        using var cluster = new LedgerCluster();
        await cluster.WaitForLeaderAsync(token);
        var node = cluster.Nodes[0];
        cluster.Client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue(
            "Bearer", await cluster.MintTokenAsync("--role", "operator", "--role", "clinician", "--org", node.NodeId));
        foreach (var file in SyntheaData.PatientBundles.Take(2))
        {
            using var content = new ByteArrayContent(File.ReadAllBytes(file));
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/fhir+json");
            using var posted = await cluster.Client.PostAsync(new Uri(node.HttpUrl, "/fhir"), content, token);
            Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        }

        async Task<JsonElement> GetAsync(string relative)
            => await cluster.Client.GetFromJsonAsync<JsonElement>(new Uri(node.HttpUrl, "/fhir/" + relative), token);
        async Task<long> TotalAsync(string query)
            => (await GetAsync(query + (query.Contains('?', StringComparison.Ordinal) ? "&" : "?") + "_summary=count")).GetProperty("total").GetInt64();

        var id = (await GetAsync("Patient?_count=1")).GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString()!;
        var observation = (await GetAsync($"Observation?patient={id}&_count=1")).GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString()!;
        var before = await TotalAsync("Observation");
        var forPatient = await TotalAsync($"Observation?patient={id}");
        Assert.True(forPatient > 0 && forPatient < before);

        using (var shred = await cluster.Client.PostAsync(new Uri(node.HttpUrl, $"/fhir/Patient/{id}/$crypto-shred"), null, token))
            Assert.Equal(HttpStatusCode.OK, shred.StatusCode);
        using (var read = await cluster.Client.GetAsync(new Uri(node.HttpUrl, $"/fhir/Observation/{observation}"), token))
            Assert.Equal(HttpStatusCode.Gone, read.StatusCode);
        using (var read = await cluster.Client.GetAsync(new Uri(node.HttpUrl, $"/fhir/Patient/{id}"), token))
            Assert.Equal(HttpStatusCode.Gone, read.StatusCode);
        Assert.Equal(before - forPatient, await TotalAsync("Observation"));
        Assert.Equal(0, await TotalAsync($"Observation?patient={id}"));
    }
}
