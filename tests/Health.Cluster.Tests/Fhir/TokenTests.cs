using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Health.Cluster.Tests.Fhir;

[Collection(LoadedClusterCollection.Name)]
public sealed class TokenTests(LoadedCluster loaded) : IDisposable
{
    // Its own client: the fixture's carries a default token, which would hide a missing one.
    private readonly HttpClient client = new();

    private static CancellationToken Token => new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token;

    private async Task<HttpResponseMessage> GetAsync(string relative, string? bearer)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(loaded.Custodian.HttpUrl, "/fhir/" + relative));
        request.Headers.Authorization = bearer is null ? null : new AuthenticationHeaderValue("Bearer", bearer);
        return await client.SendAsync(request, Token);
    }

    // An ES256 token over arbitrary claims, signed with the key the nodes trust.
    private async Task<string> SignWithClusterKeyAsync(Dictionary<string, object> claims)
    {
        using var key = ECDsa.Create();
        key.ImportFromPem(await File.ReadAllTextAsync(loaded.Cluster.DevIssuerKey));
        var unsigned = $"{Part(new { alg = "ES256", typ = "JWT" })}.{Part(claims)}";
        return unsigned + "." + Base64Url(key.SignData(Encoding.ASCII.GetBytes(unsigned), HashAlgorithmName.SHA256));
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static string Part(object value) => Base64Url(JsonSerializer.SerializeToUtf8Bytes(value));

    public static TheoryData<string> RefusedTokens()
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var claims = new Dictionary<string, object> { ["iss"] = "https://dev-issuer.health-ledger.invalid", ["aud"] = "health-ledger", ["sub"] = "x", ["roles"] = "clinician", ["scope"] = "user/*.rs", ["exp"] = now + 600, ["nbf"] = now - 10 };
        using var stranger = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var header = Part(new { alg = "ES256", typ = "JWT" });
        var strangerSigned = $"{header}.{Part(claims)}";
        strangerSigned += "." + Base64Url(stranger.SignData(Encoding.ASCII.GetBytes(strangerSigned), HashAlgorithmName.SHA256));
        return new TheoryData<string>
        {
            $"{Part(new { alg = "none", typ = "JWT" })}.{Part(claims)}.",
            strangerSigned,
            "not-a-token",
        };
    }

    [Theory]
    [MemberData(nameof(RefusedTokens))]
    public async Task Forged_or_unsigned_tokens_get_401_with_WWW_Authenticate(string bearer)
    {
        using var response = await GetAsync("Patient?_count=1", bearer);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.NotEmpty(response.Headers.WwwAuthenticate);
        Assert.Equal("OperationOutcome", (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("resourceType").GetString());
    }

    [Theory]
    [InlineData("audience", "it is for another audience")]
    [InlineData("issuer", "its issuer is not trusted")]
    [InlineData("not-yet-valid", "it is not valid yet")]
    [InlineData("expired", "it has expired")]
    [InlineData("no-expiry", "it has no expiry")]
    public async Task Tokens_signed_by_the_real_key_but_with_wrong_claims_get_401_naming_what_is_wrong(string wrong, string reason)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var claims = new Dictionary<string, object>
        {
            ["iss"] = wrong == "issuer" ? "https://elsewhere.invalid" : "https://dev-issuer.health-ledger.invalid",
            ["aud"] = wrong == "audience" ? "another-api" : "health-ledger",
            ["sub"] = "x", ["roles"] = "clinician", ["scope"] = "user/*.rs",
            ["nbf"] = wrong switch { "not-yet-valid" => now + 3600, "expired" => now - 7200, _ => now - 10 },
        };
        if (wrong != "no-expiry")
            claims["exp"] = wrong == "expired" ? now - 600 : now + 7200;
        using var response = await GetAsync("Patient?_count=1", await SignWithClusterKeyAsync(claims));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var outcome = await response.Content.ReadFromJsonAsync<JsonElement>(Token);
        Assert.Equal($"The bearer token was refused: {reason}.", outcome.GetProperty("issue")[0].GetProperty("diagnostics").GetString());
        await loaded.Custodian.WaitForOutputAsync($"a bearer token was refused, {reason}", TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task The_same_claims_signed_by_the_real_key_are_accepted()
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var claims = new Dictionary<string, object>
        {
            ["iss"] = "https://dev-issuer.health-ledger.invalid", ["aud"] = "health-ledger", ["sub"] = "x",
            ["roles"] = "clinician", ["scope"] = "user/*.rs", ["org"] = "node1", ["nbf"] = now - 10, ["exp"] = now + 600,
        };
        using var response = await GetAsync("Patient?_count=1", await SignWithClusterKeyAsync(claims));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task A_token_remembered_as_valid_is_refused_once_it_expires()
    {
        // Nodes remember a validated token rather than verify its signature on every request; that
        // must not let it outlive its expiry (plus the 30 s clock skew a full check allows).
        var expires = DateTimeOffset.UtcNow.AddSeconds(2);
        var token = await SignWithClusterKeyAsync(new Dictionary<string, object>
        {
            ["iss"] = "https://dev-issuer.health-ledger.invalid", ["aud"] = "health-ledger", ["sub"] = "x",
            ["roles"] = "clinician", ["scope"] = "user/*.rs", ["org"] = "node1",
            ["nbf"] = expires.AddMinutes(-1).ToUnixTimeSeconds(), ["exp"] = expires.ToUnixTimeSeconds(),
        });
        for (var i = 0; i < 3; i++)
        {
            using var accepted = await GetAsync("Patient?_count=1", token);
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        }

        var refusedBy = expires.AddSeconds(45);
        HttpStatusCode status;
        string? reason = null;
        do
        {
            using var response = await GetAsync("Patient?_count=1", token);
            status = response.StatusCode;
            if (status == HttpStatusCode.Unauthorized)
                reason = (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("issue")[0].GetProperty("diagnostics").GetString();
            else
                await Task.Delay(500);
        }
        while (status != HttpStatusCode.Unauthorized && DateTimeOffset.UtcNow < refusedBy);

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("The bearer token was refused: it has expired.", reason);
    }

    [Fact]
    public async Task Missing_and_expired_tokens_get_401()
    {
        using (var none = await GetAsync("Patient?_count=1", null))
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        using (var expired = await GetAsync("Patient?_count=1", await loaded.Cluster.MintTokenAsync("--role", "clinician", "--minutes", "-5")))
            Assert.Equal(HttpStatusCode.Unauthorized, expired.StatusCode);
    }

    [Fact]
    public async Task Metadata_and_smart_configuration_need_no_token()
    {
        using var metadata = await GetAsync("metadata", null);
        Assert.Equal(HttpStatusCode.OK, metadata.StatusCode);
        using var smart = await GetAsync(".well-known/smart-configuration", null);
        Assert.Equal(HttpStatusCode.OK, smart.StatusCode);
    }

    [Fact]
    public async Task Roles_and_scopes_limit_what_a_token_may_do()
    {
        var observationsOnly = await loaded.Cluster.MintTokenAsync("--role", "clinician", "--org", "node1", "--scope", "user/Observation.rs");
        using (var allowed = await GetAsync("Observation?_count=1", observationsOnly))
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        using (var refused = await GetAsync("Patient?_count=1", observationsOnly))
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);

        // A clinician may read but not ingest; an auditor may not read records.
        using (var ingest = await loaded.PostBundleWithTokenAsync("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[]}"u8.ToArray(), loaded.ClinicianToken, Token))
            Assert.Equal(HttpStatusCode.Forbidden, ingest.StatusCode);
        using (var auditor = await GetAsync("Observation?_count=1", await loaded.Cluster.MintTokenAsync("--role", "auditor", "--scope", "user/*.rs")))
            Assert.Equal(HttpStatusCode.Forbidden, auditor.StatusCode);
    }

    [SyntheaFact]
    public async Task A_patient_token_sees_only_its_own_compartment()
    {
        using var patients = await GetAsync("Patient?_count=2", loaded.ClinicianToken);
        var entries = (await patients.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("entry");
        var own = entries[0].GetProperty("resource").GetProperty("id").GetString()!;
        var other = entries[1].GetProperty("resource").GetProperty("id").GetString()!;
        var patientToken = await loaded.Cluster.MintTokenAsync("--role", "patient", "--patient", own);

        using (var ownRead = await GetAsync($"Patient/{own}", patientToken))
            Assert.Equal(HttpStatusCode.OK, ownRead.StatusCode);
        using (var otherRead = await GetAsync($"Patient/{other}", patientToken))
            Assert.Equal(HttpStatusCode.Forbidden, otherRead.StatusCode);

        using var search = await GetAsync("Observation?_summary=count", patientToken);
        var total = (await search.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("total").GetInt64();
        using var ownSearch = await GetAsync($"Observation?patient={own}&_summary=count", loaded.ClinicianToken);
        Assert.Equal((await ownSearch.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("total").GetInt64(), total);
    }

    public void Dispose() => client.Dispose();
}
