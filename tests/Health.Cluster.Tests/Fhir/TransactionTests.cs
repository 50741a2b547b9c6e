using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Health.Cluster.Tests.Fhir;

/// <summary>Transactions with PUT and DELETE entries, all or nothing, and entries referencing each other, on a cluster of its own (it changes records).</summary>
public sealed class TransactionTests : IAsyncLifetime
{
    private readonly LoadedCluster loaded = new() { LoadSamples = false };

    private static CancellationToken Token => new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token;

    public Task InitializeAsync() => loaded.InitializeAsync();

    public Task DisposeAsync() => loaded.DisposeAsync();

    private async Task<JsonElement> PostAsync(string bundle, HttpStatusCode expected)
    {
        using var response = await loaded.PostBundleAsync(Encoding.UTF8.GetBytes(bundle), Token);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Token);
        Assert.True(response.StatusCode == expected, $"{(int)response.StatusCode}: {body}");
        return body;
    }

    private async Task<HttpStatusCode> ReadStatusAsync(string relative)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(loaded.Custodian.HttpUrl, "/fhir/" + relative));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", loaded.ClinicianToken);
        using var response = await loaded.Cluster.Client.SendAsync(request, Token);
        return response.StatusCode;
    }

    private static string Observation(string patient, string status, string? id = null)
        => $$$"""{"resourceType":"Observation",{{{(id is null ? "" : $"\"id\":\"{id}\",")}}}"status":"{{{status}}}","code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]},"subject":{"reference":"Patient/{{{patient}}}"}}""";

    private static string Transaction(params string[] entries) => $$$"""{"resourceType":"Bundle","type":"transaction","entry":[{{{string.Join(',', entries)}}}]}""";

    [SyntheaFact]
    public async Task Put_and_delete_entries_apply_together_or_not_at_all()
    {
        var ingested = await PostAsync(await File.ReadAllTextAsync(SyntheaData.PatientBundles.First(), Token), HttpStatusCode.OK);
        var patient = ingested.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("response").GetProperty("location").GetString()!)
            .First(l => l.StartsWith("Patient/", StringComparison.Ordinal)).Split('/')[1];
        var created = await PostAsync(Transaction(
            $$$"""{"resource":{{{Observation(patient, "preliminary")}}},"request":{"method":"POST","url":"Observation"}}""",
            $$$"""{"resource":{{{Observation(patient, "preliminary")}}},"request":{"method":"POST","url":"Observation"}}"""), HttpStatusCode.OK);
        var ids = created.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("response").GetProperty("location").GetString()!.Split('/')[1]).ToList();

        // A stale ifMatch fails the whole bundle: the delete in it does not happen either.
        await PostAsync(Transaction(
            $$$"""{"request":{"method":"DELETE","url":"Observation/{{{ids[1]}}}"}}""",
            $$$"""{"resource":{{{Observation(patient, "final", ids[0])}}},"request":{"method":"PUT","url":"Observation/{{{ids[0]}}}","ifMatch":"W/\"7\""}}"""), HttpStatusCode.PreconditionFailed);
        Assert.Equal(HttpStatusCode.OK, await ReadStatusAsync($"Observation/{ids[1]}"));

        var done = await PostAsync(Transaction(
            $$$"""{"resource":{{{Observation(patient, "final", ids[0])}}},"request":{"method":"PUT","url":"Observation/{{{ids[0]}}}","ifMatch":"W/\"1\""}}""",
            $$$"""{"request":{"method":"DELETE","url":"Observation/{{{ids[1]}}}"}}"""), HttpStatusCode.OK);
        var responses = done.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("response").GetProperty("status").GetString()).ToList();
        Assert.Equal(["200 OK", "204 No Content"], responses);
        Assert.Equal(HttpStatusCode.Gone, await ReadStatusAsync($"Observation/{ids[1]}"));
        Assert.Equal(HttpStatusCode.OK, await ReadStatusAsync($"Observation/{ids[0]}/_history/2"));

        await PostAsync(Transaction($$$"""{"resource":{{{Observation(patient, "final", "no-such-id")}}},"request":{"method":"PUT","url":"Observation/no-such-id"}}"""), HttpStatusCode.NotFound);
        await PostAsync(Transaction(
            $$$"""{"request":{"method":"DELETE","url":"Observation/{{{ids[0]}}}"}}""",
            $$$"""{"resource":{{{Observation(patient, "final", ids[0])}}},"request":{"method":"PUT","url":"Observation/{{{ids[0]}}}"}}"""), HttpStatusCode.BadRequest);

        // Entries may reference each other in a cycle: each reference is resolved once, to the other's id.
        var (first, second) = (Guid.NewGuid(), Guid.NewGuid());
        string Member(Guid self, Guid other) => $$$"""{"fullUrl":"urn:uuid:{{{self}}}","resource":{"resourceType":"Observation","status":"final","code":{"text":"panel"},"subject":{"reference":"Patient/{{{patient}}}"},"hasMember":[{"reference":"urn:uuid:{{{other}}}"}]},"request":{"method":"POST","url":"Observation"}}""";
        var cycle = await PostAsync(Transaction(Member(first, second), Member(second, first)), HttpStatusCode.OK);
        var cycleIds = cycle.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("response").GetProperty("location").GetString()!.Split('/')[1]).ToList();
        using var read = new HttpRequestMessage(HttpMethod.Get, new Uri(loaded.Custodian.HttpUrl, $"/fhir/Observation/{cycleIds[0]}"));
        read.Headers.Authorization = new AuthenticationHeaderValue("Bearer", loaded.ClinicianToken);
        using var stored = await loaded.Cluster.Client.SendAsync(read, Token);
        var member = (await stored.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("hasMember")[0].GetProperty("reference").GetString();
        Assert.Equal($"Observation/{cycleIds[1]}", member);
    }

    [SyntheaFact]
    public async Task Concurrent_transactions_are_each_stored_whole_and_a_failed_one_lets_the_next_in()
    {
        var patient = await loaded.Cluster.IngestFirstPatientAsync(loaded.Custodian, Token);
        var existing = (await PostAsync(Transaction($$$"""{"resource":{{{Observation(patient, "preliminary")}}},"request":{"method":"POST","url":"Observation"}}"""), HttpStatusCode.OK))
            .GetProperty("entry")[0].GetProperty("response").GetProperty("location").GetString()!.Split('/')[1];

        // The custodian writes one transaction at a time; those waiting are let in as each ends,
        // including one that fails (a stale ifMatch) and is rolled back.
        var creates = Enumerable.Range(0, 8).Select(_ => PostAsync(Transaction(
            $$$"""{"resource":{{{Observation(patient, "final")}}},"request":{"method":"POST","url":"Observation"}}""",
            $$$"""{"resource":{{{Observation(patient, "amended")}}},"request":{"method":"POST","url":"Observation"}}"""), HttpStatusCode.OK)).ToList();
        var stale = PostAsync(Transaction(
            $$$"""{"resource":{{{Observation(patient, "final", existing)}}},"request":{"method":"PUT","url":"Observation/{{{existing}}}","ifMatch":"W/\"9\""}}"""),
            HttpStatusCode.PreconditionFailed);
        await Task.WhenAll([.. creates, stale]);

        var created = creates.SelectMany(c => c.Result.GetProperty("entry").EnumerateArray())
            .Select(e => e.GetProperty("response").GetProperty("location").GetString()!.Split('/')[1]).ToList();
        Assert.Equal(16, created.Distinct().Count());
        foreach (var id in created)
            Assert.Equal(HttpStatusCode.OK, await ReadStatusAsync($"Observation/{id}"));
        Assert.Equal(HttpStatusCode.NotFound, await ReadStatusAsync($"Observation/{existing}/_history/2"));
        await PostAsync(Transaction(
            $$$"""{"resource":{{{Observation(patient, "final", existing)}}},"request":{"method":"PUT","url":"Observation/{{{existing}}}","ifMatch":"W/\"1\""}}"""), HttpStatusCode.OK);
    }
}
