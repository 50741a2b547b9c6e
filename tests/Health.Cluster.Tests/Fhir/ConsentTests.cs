using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Health.Cluster.Tests.Fhir;

/// <summary>Consent grants through the FHIR API and authorize-by-log, on the shared loaded cluster.</summary>
[Collection(LoadedClusterCollection.Name)]
public sealed class ConsentTests(LoadedCluster loaded)
{
    private static CancellationToken Token => new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token;

    private Uri Fhir(string relative) => new(loaded.Custodian.HttpUrl, "/fhir/" + relative);

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string relative, string token, string? body = null, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(method, Fhir(relative));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        foreach (var (name, value) in headers)
            request.Headers.Add(name, value);
        if (body is not null)
            request.Content = new StringContent(body, Encoding.UTF8, "application/fhir+json");
        return await loaded.Cluster.Client.SendAsync(request, Token);
    }

    private async Task<string> FirstPatientAsync(int skip)
    {
        var bundle = await loaded.Cluster.Client.GetFromJsonAsync<JsonElement>(Fhir($"Patient?_count={skip + 1}"), Token);
        return bundle.GetProperty("entry")[skip].GetProperty("resource").GetProperty("id").GetString()!;
    }

    internal static string ConsentJson(string patient, string organization, string status = "active", string? id = null) => $$$"""
        {"resourceType":"Consent",{{{(id is null ? "" : $"\"id\":\"{id}\",")}}}"status":"{{{status}}}",
         "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
         "category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
         "patient":{"reference":"Patient/{{{patient}}}"},
         "provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},"reference":{"reference":"Organization/{{{organization}}}"}}],
           "purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}]}}
        """;

    private async Task<JsonElement> LedgerEntryAsync(long index)
        => await loaded.Cluster.Client.GetFromJsonAsync<JsonElement>(new Uri(loaded.Custodian.HttpUrl, $"/ledger/entries/{index}"), Token);

    private static long LedgerIndex(HttpResponseMessage response) => long.Parse(response.Headers.GetValues("X-Ledger-Index").Single(), System.Globalization.CultureInfo.InvariantCulture);

    [SyntheaFact]
    public async Task Another_organisation_reads_only_while_the_patient_grants_it()
    {
        var patient = await FirstPatientAsync(skip: 3);
        var stranger = await loaded.Cluster.MintTokenAsync("--role", "clinician", "--org", "clinic-east", "--practitioner", "p-east");
        var patientToken = await loaded.Cluster.MintTokenAsync("--role", "patient", "--patient", patient);

        using (var denied = await SendAsync(HttpMethod.Get, $"Patient/{patient}", stranger))
        {
            Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
            var outcome = await denied.Content.ReadAsStringAsync(Token);
            Assert.Contains("clinic-east", outcome, StringComparison.Ordinal);
            var entry = await LedgerEntryAsync(LedgerIndex(denied));
            Assert.Equal("AccessRequested", entry.GetProperty("kind").GetString());
            Assert.Contains(LedgerIndex(denied).ToString(System.Globalization.CultureInfo.InvariantCulture), outcome, StringComparison.Ordinal);
            await AssertRecordedDecisionAsync(LedgerIndex(denied), permitted: false, stranger);
        }

        string consentId;
        using (var granted = await SendAsync(HttpMethod.Post, "Consent", patientToken, ConsentJson(patient, "clinic-east")))
        {
            Assert.Equal(HttpStatusCode.Created, granted.StatusCode);
            consentId = (await granted.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("id").GetString()!;
            var entry = await LedgerEntryAsync(LedgerIndex(granted));
            Assert.Equal("ConsentGranted", entry.GetProperty("kind").GetString());
            Assert.Equal(consentId, entry.GetProperty("fields").GetProperty("consentId").GetString());
        }

        long permitIndex;
        using (var permitted = await SendAsync(HttpMethod.Get, $"Patient/{patient}", stranger))
        {
            Assert.Equal(HttpStatusCode.OK, permitted.StatusCode);
            var body = await permitted.Content.ReadAsByteArrayAsync(Token);
            Assert.NotEqual(true, permitted.Headers.TransferEncodingChunked);
            Assert.Equal(body.Length, permitted.Content.Headers.ContentLength);
            using (var resource = JsonDocument.Parse(body))
                Assert.Equal("Patient", resource.RootElement.GetProperty("resourceType").GetString());
            permitIndex = LedgerIndex(permitted);
            var fields = (await LedgerEntryAsync(permitIndex)).GetProperty("fields");
            Assert.Equal("clinic-east", fields.GetProperty("organization").GetString());
            Assert.Equal("Practitioner/p-east", fields.GetProperty("requester").GetString());
        }

        using (var everything = await SendAsync(HttpMethod.Get, $"Patient/{patient}/$everything?_count=5", stranger))
            Assert.Equal(HttpStatusCode.OK, everything.StatusCode);

        using (var revoked = await SendAsync(HttpMethod.Put, $"Consent/{consentId}", patientToken, ConsentJson(patient, "clinic-east", "inactive", consentId)))
        {
            Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
            var revokeIndex = LedgerIndex(revoked);
            Assert.True(revokeIndex > permitIndex);
            Assert.Equal("ConsentRevoked", (await LedgerEntryAsync(revokeIndex)).GetProperty("kind").GetString());
        }

        using var after = await SendAsync(HttpMethod.Get, $"Patient/{patient}", stranger);
        Assert.Equal(HttpStatusCode.Forbidden, after.StatusCode);
    }

    private async Task AssertRecordedDecisionAsync(long index, bool permitted, string clinicianToken)
    {
        var uri = new Uri(loaded.Custodian.HttpUrl, $"/ledger/access/{index}");
        using (var asClinician = new HttpRequestMessage(HttpMethod.Get, uri))
        {
            asClinician.Headers.Authorization = new AuthenticationHeaderValue("Bearer", clinicianToken);
            using var refused = await loaded.Cluster.Client.SendAsync(asClinician, Token);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        using var asAuditor = new HttpRequestMessage(HttpMethod.Get, uri);
        asAuditor.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await loaded.Cluster.MintTokenAsync("--role", "auditor"));
        using var response = await loaded.Cluster.Client.SendAsync(asAuditor, Token);
        var decision = await response.Content.ReadFromJsonAsync<JsonElement>(Token);
        Assert.Equal(permitted, decision.GetProperty("permitted").GetBoolean());
        Assert.Equal(index, decision.GetProperty("index").GetInt64());
    }

    [SyntheaFact]
    public async Task Searches_leave_out_patients_the_requester_may_not_see_even_in_the_total()
    {
        var patient = await FirstPatientAsync(skip: 4);
        var stranger = await loaded.Cluster.MintTokenAsync("--role", "clinician", "--org", "clinic-west");
        var patientToken = await loaded.Cluster.MintTokenAsync("--role", "patient", "--patient", patient);
        async Task<(long Total, int Entries, bool Next)> SearchAsync(string query, string token)
        {
            using var response = await SendAsync(HttpMethod.Get, query, token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var bundle = await response.Content.ReadFromJsonAsync<JsonElement>(Token);
            return (bundle.GetProperty("total").GetInt64(), bundle.TryGetProperty("entry", out var e) ? e.GetArrayLength() : 0,
                bundle.GetProperty("link").EnumerateArray().Any(l => l.GetProperty("relation").GetString() == "next"));
        }

        Assert.Equal((0, 0, false), await SearchAsync("Observation?_count=5", stranger));
        Assert.Equal((0, 0, false), await SearchAsync("Patient?_count=5", stranger));
        using (var named = await SendAsync(HttpMethod.Get, $"Observation?patient={patient}", stranger))
            Assert.Equal(HttpStatusCode.Forbidden, named.StatusCode);

        using (var granted = await SendAsync(HttpMethod.Post, "Consent", patientToken, ConsentJson(patient, "clinic-west")))
            Assert.Equal(HttpStatusCode.Created, granted.StatusCode);
        var own = await SearchAsync($"Observation?patient={patient}&_count=5", loaded.ClinicianToken);
        Assert.Equal(own, await SearchAsync("Observation?_count=5", stranger));
        Assert.Equal((1, 1, false), await SearchAsync("Patient?_count=5", stranger));
    }

    [SyntheaFact]
    public async Task Break_glass_is_permitted_recorded_and_its_reason_sealed()
    {
        var patient = await FirstPatientAsync(skip: 5);
        var stranger = await loaded.Cluster.MintTokenAsync("--role", "clinician", "--org", "clinic-er");
        const string reason = "Unconscious on arrival, suspected overdose";
        using var response = await SendAsync(HttpMethod.Get, $"Patient/{patient}", stranger, null,
            ("X-Purpose-Of-Use", "ETREAT"), ("X-Break-Glass-Reason", reason));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var fields = (await LedgerEntryAsync(LedgerIndex(response))).GetProperty("fields");
        Assert.Equal("ETREAT", fields.GetProperty("purpose").GetString());
        var sealedReason = fields.GetProperty("breakGlassReason").GetString()!;
        Assert.DoesNotContain("overdose", sealedReason, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("overdose", Encoding.UTF8.GetString(Convert.FromBase64String(sealedReason)), StringComparison.OrdinalIgnoreCase);

        using var withoutReason = await SendAsync(HttpMethod.Get, $"Patient/{patient}", stranger, null, ("X-Purpose-Of-Use", "ETREAT"));
        Assert.Equal(HttpStatusCode.Forbidden, withoutReason.StatusCode);
        using var unknownPurpose = await SendAsync(HttpMethod.Get, $"Patient/{patient}", stranger, null, ("X-Purpose-Of-Use", "SHOPPING"));
        Assert.Equal(HttpStatusCode.BadRequest, unknownPurpose.StatusCode);
    }

    [SyntheaFact]
    public async Task Consents_that_cannot_be_enforced_are_refused_and_change_nothing()
    {
        var patient = await FirstPatientAsync(skip: 6);
        var other = await FirstPatientAsync(skip: 7);
        var patientToken = await loaded.Cluster.MintTokenAsync("--role", "patient", "--patient", patient);
        var wrongScope = ConsentJson(patient, "clinic-x").Replace("patient-privacy", "research", StringComparison.Ordinal);
        var wrongActor = ConsentJson(patient, "clinic-x").Replace("Organization/clinic-x", "RelatedPerson/x", StringComparison.Ordinal);
        var wrongPurpose = ConsentJson(patient, "clinic-x").Replace("\"TREAT\"", "\"SHOPPING\"", StringComparison.Ordinal);
        foreach (var body in new[] { wrongScope, wrongActor, wrongPurpose })
        {
            using var refused = await SendAsync(HttpMethod.Post, "Consent", patientToken, body);
            Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
        }

        using (var forOther = await SendAsync(HttpMethod.Post, "Consent", patientToken, ConsentJson(other, "clinic-x")))
            Assert.Equal(HttpStatusCode.Forbidden, forOther.StatusCode);
        using (var byClinician = await SendAsync(HttpMethod.Post, "Consent", loaded.ClinicianToken, ConsentJson(patient, "clinic-x")))
            Assert.Equal(HttpStatusCode.Forbidden, byClinician.StatusCode);
        using var list = await SendAsync(HttpMethod.Get, "Consent?_summary=count", patientToken);
        Assert.Equal(0, (await list.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("total").GetInt64());
    }

    [SyntheaFact]
    public async Task Records_with_a_label_the_grant_withholds_are_left_out_of_reads_and_searches()
    {
        var patient = await FirstPatientAsync(skip: 8);
        var custodian = await loaded.Cluster.MintTokenAsync("--role", "clinician", "--org", "node1", "--scope", "user/*.cruds");
        var stranger = await loaded.Cluster.MintTokenAsync("--role", "clinician", "--org", "clinic-south");
        var patientToken = await loaded.Cluster.MintTokenAsync("--role", "patient", "--patient", patient);
        const string Label = """{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}""";
        string labelled;
        using (var created = await SendAsync(HttpMethod.Post, "Observation", custodian, $$$"""
            {"resourceType":"Observation","status":"final","meta":{"security":[{{{Label}}}]},
             "code":{"coding":[{"system":"http://loinc.org","code":"11348-0"}]},"subject":{"reference":"Patient/{{{patient}}}"}}
            """))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            labelled = (await created.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("id").GetString()!;
        }

        // A grant to clinic-south that withholds psychiatry records.
        var grant = ConsentJson(patient, "clinic-south").Replace(
            "\"purpose\":[", $$"""
            "provision":[{"type":"deny","securityLabel":[{{Label}}]}],"purpose":[
            """.Trim(), StringComparison.Ordinal);
        using (var recorded = await SendAsync(HttpMethod.Post, "Consent", patientToken, grant))
            Assert.Equal(HttpStatusCode.Created, recorded.StatusCode);

        async Task<(long Total, List<string> Ids)> SearchAsync(string query, string token)
        {
            using var response = await SendAsync(HttpMethod.Get, query, token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var bundle = await response.Content.ReadFromJsonAsync<JsonElement>(Token);
            return (bundle.GetProperty("total").GetInt64(), bundle.TryGetProperty("entry", out var entries)
                ? [.. entries.EnumerateArray().Select(e => e.GetProperty("resource").GetProperty("id").GetString()!)]
                : []);
        }

        var own = await SearchAsync($"Observation?patient={patient}&_count=500", custodian);
        Assert.InRange(own.Total, 2, 500);
        Assert.Contains(labelled, own.Ids);
        Assert.Equal([labelled], (await SearchAsync($"Observation?patient={patient}&_security=PSY", custodian)).Ids);

        var granted = await SearchAsync($"Observation?patient={patient}&_count=500", stranger);
        Assert.Equal(own.Total - 1, granted.Total);
        Assert.Equal(own.Ids.Where(id => id != labelled), granted.Ids);
        using (var read = await SendAsync(HttpMethod.Get, $"Observation/{labelled}", stranger))
            Assert.Equal(HttpStatusCode.Forbidden, read.StatusCode);
        using (var other = await SendAsync(HttpMethod.Get, $"Observation/{granted.Ids[0]}", stranger))
            Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }
}
