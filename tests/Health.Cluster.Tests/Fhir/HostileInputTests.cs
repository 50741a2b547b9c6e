using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;

namespace Health.Cluster.Tests.Fhir;

/// <summary>
/// Generated hostile input (FsCheck): malformed and deeply nested JSON, huge arrays, invalid UTF-8,
/// wrong resource types, broken bundles, SQL and path metacharacters in every search parameter.
/// Every answer is a 4xx OperationOutcome (or, for a query, a clean 200), nothing is written and
/// the node stays up.
/// </summary>
[Collection(LoadedClusterCollection.Name)]
public sealed class HostileInputTests(LoadedCluster loaded)
{
    private const int Cases = 80;
    private static CancellationToken Token => new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token;

    private static readonly string[] Nasty = ["'", "\"", "';--", "%", "_", "\\", "../", "..\\..\\", "\0", "%00", "%27%20OR%201=1", "<script>", "${x}", "|", "*", "' OR '1'='1", "\u202e", "𝒜", ";DROP TABLE current;"];

    private static Gen<byte[]> HostileBodies() => Gen.OneOf(
        Gen.ArrayOf(Gen.Choose(0, 255).Select(b => (byte)b)).Select(b => b.Length == 0 ? [0xff] : b),
        Gen.Choose(50, 5000).Select(depth => Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("{\"resourceType\":\"Bundle\",\"entry\":[", depth)))),
        Gen.Choose(1000, 200_000).Select(n => Encoding.UTF8.GetBytes("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[" + string.Join(',', Enumerable.Repeat("1", n)) + "]}")),
        Gen.Elements("Patient", "Nope", "", "Bundle ", "../../etc/passwd", "Observation").Select(t => Encoding.UTF8.GetBytes($"{{\"resourceType\":\"{t}\",\"id\":\"x\",\"status\":7}}")),
        Gen.Elements(Nasty).Select(n => Encoding.UTF8.GetBytes($"{{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{{\"fullUrl\":\"urn:uuid:{n}\",\"resource\":{{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{{\"text\":\"x\"}},\"subject\":{{\"reference\":\"Patient?identifier={n}\"}}}},\"request\":{{\"method\":\"POST\",\"url\":\"Observation\"}}}}]}}")),
        Gen.Constant(new byte[] { 0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d }));

    private static Gen<string> HostileQueries() =>
        from type in Gen.Elements("Patient", "Observation", "Condition", "Encounter")
        from parameter in Gen.Elements("identifier", "name", "family", "code", "date", "patient", "subject", "_id", "category", "status", "_sort", "_count", "_cursor", "birthdate", "x'--")
        from value in Gen.Elements(Nasty)
        select $"{type}?{Uri.EscapeDataString(parameter)}={Uri.EscapeDataString(value)}";

    private async Task<long> StoredResourcesAsync()
        => (await loaded.Cluster.Client.GetFromJsonAsync<JsonElement>(new Uri(loaded.Custodian.HttpUrl, "/readyz"), Token)).GetProperty("resources").GetInt64();

    [Fact]
    public async Task Hostile_bodies_get_4xx_OperationOutcomes_and_change_nothing()
    {
        var before = await StoredResourcesAsync();
        foreach (var body in HostileBodies().Sample(Cases))
        {
            using var response = await loaded.PostBundleAsync(body, Token);
            var text = await response.Content.ReadAsStringAsync(Token);
            var status = (int)response.StatusCode;
            Assert.True(status is >= 400 and < 500, $"{status} for a body starting {Convert.ToHexString(body.AsSpan(0, int.Min(body.Length, 48)))}: {text[..int.Min(text.Length, 300)]}");
            Assert.Contains("OperationOutcome", text, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
        }

        Assert.Equal(before, await StoredResourcesAsync());
    }

    [Fact]
    public async Task Metacharacters_in_every_search_parameter_get_clean_answers()
    {
        var clinician = loaded.ClinicianToken;
        foreach (var query in HostileQueries().Sample(Cases))
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(loaded.Custodian.HttpUrl, "/fhir/" + query));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", clinician);
            using var response = await loaded.Cluster.Client.SendAsync(request, Token);
            var status = (int)response.StatusCode;
            var text = await response.Content.ReadAsStringAsync(Token);
            Assert.True(status is 200 or 400 or 403 or 404, $"{status} for {query}: {text[..int.Min(text.Length, 300)]}");
            Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
        }

        using var alive = await loaded.Cluster.Client.GetAsync(new Uri(loaded.Custodian.HttpUrl, "/healthz"), Token);
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
    }
}
