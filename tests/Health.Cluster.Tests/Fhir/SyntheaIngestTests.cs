using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Health.Cluster.Tests.Fhir;

[Collection(LoadedClusterCollection.Name)]
public sealed class SyntheaIngestTests(LoadedCluster loaded)
{
    private static CancellationToken Token => new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token;

    private Uri Fhir(string relative) => new(loaded.Custodian.HttpUrl, "/fhir/" + relative);

    private async Task<JsonElement> GetAsync(string relative)
    {
        using var response = await loaded.Cluster.Client.GetAsync(Fhir(relative), Token);
        Assert.True(response.IsSuccessStatusCode, $"{relative}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(Token)}");
        return await response.Content.ReadFromJsonAsync<JsonElement>(Token);
    }

    private async Task<long> TotalAsync(string query)
        => (await GetAsync(query + (query.Contains('?', StringComparison.Ordinal) ? "&" : "?") + "_summary=count")).GetProperty("total").GetInt64();

    [SyntheaFact]
    public async Task Every_resource_of_every_bundle_is_stored()
    {
        var expected = SyntheaData.OrganizationAndPractitionerBundles.Concat(SyntheaData.PatientBundles)
            .SelectMany(SyntheaData.Resources)
            .GroupBy(r => r.GetProperty("resourceType").GetString()!)
            .ToDictionary(g => g.Key, g => (long)g.Count());
        foreach (var (type, count) in expected)
            Assert.Equal((type, count), (type, await TotalAsync(type)));
    }

    [SyntheaFact]
    public async Task Searches_match_a_brute_force_filter_of_the_source_bundles()
    {
        var patients = SyntheaData.PatientBundles.SelectMany(SyntheaData.Resources).Where(r => r.GetProperty("resourceType").GetString() == "Patient").ToList();
        var observations = SyntheaData.PatientBundles.SelectMany(SyntheaData.Resources).Where(r => r.GetProperty("resourceType").GetString() == "Observation").ToList();

        Assert.Equal(patients.Count(p => p.GetProperty("gender").GetString() == "female"), await TotalAsync("Patient?gender=female"));
        Assert.Equal(patients.Count(p => string.CompareOrdinal(p.GetProperty("birthDate").GetString(), "1970-01-01") >= 0), await TotalAsync("Patient?birthdate=ge1970-01-01"));
        Assert.Equal(patients.Count(p => string.CompareOrdinal(p.GetProperty("birthDate").GetString(), "1970-01-01") < 0), await TotalAsync("Patient?birthdate=lt1970-01-01"));

        var family = patients[0].GetProperty("name")[0].GetProperty("family").GetString()!;
        var prefix = family[..3];
        Assert.Equal(
            patients.Count(p => p.GetProperty("name").EnumerateArray().Any(n => n.GetProperty("family").GetString()!.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))),
            await TotalAsync($"Patient?family={prefix.ToLowerInvariant()}"));

        var ssn = patients[0].GetProperty("identifier").EnumerateArray().First(i => i.TryGetProperty("system", out var s) && s.GetString() == "http://hl7.org/fhir/sid/us-ssn").GetProperty("value").GetString()!;
        Assert.Equal(1, await TotalAsync($"Patient?identifier={Uri.EscapeDataString("http://hl7.org/fhir/sid/us-ssn|" + ssn)}"));

        static bool HasCoding(JsonElement concept, string system, string code)
            => concept.GetProperty("coding").EnumerateArray().Any(c => c.GetProperty("system").GetString() == system && c.GetProperty("code").GetString() == code);
        Assert.Equal(observations.Count(o => HasCoding(o.GetProperty("code"), "http://loinc.org", "8302-2")), await TotalAsync("Observation?code=http://loinc.org|8302-2"));
        Assert.Equal(observations.Count(o => o.TryGetProperty("category", out var c) && c.EnumerateArray().Any(x => HasCoding(x, "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory"))),
            await TotalAsync("Observation?category=laboratory"));
        Assert.Equal(observations.Count(o => o.TryGetProperty("effectiveDateTime", out var d) && string.CompareOrdinal(d.GetString(), "2015-01-01") >= 0),
            await TotalAsync("Observation?date=ge2015-01-01"));
    }

    [SyntheaFact]
    public async Task Everything_returns_the_whole_compartment_of_a_patient_across_pages()
    {
        var bundle = SyntheaData.PatientBundles.Skip(3).First();
        var resources = SyntheaData.Resources(bundle).ToList();
        var ssn = resources.Single(r => r.GetProperty("resourceType").GetString() == "Patient").GetProperty("identifier").EnumerateArray()
            .First(i => i.TryGetProperty("system", out var s) && s.GetString() == "http://hl7.org/fhir/sid/us-ssn").GetProperty("value").GetString()!;
        var patient = await GetAsync($"Patient?identifier={Uri.EscapeDataString("http://hl7.org/fhir/sid/us-ssn|" + ssn)}");
        var id = patient.GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString()!;
        var expected = resources.Count(r => r.GetProperty("resourceType").GetString() is not ("Organization" or "Practitioner"));

        var seen = new HashSet<string>();
        string? next = $"Patient/{id}/$everything?_count=50";
        while (next is not null)
        {
            var page = await GetAsync(next);
            Assert.Equal(expected, page.GetProperty("total").GetInt64());
            foreach (var entry in page.GetProperty("entry").EnumerateArray())
            {
                var resource = entry.GetProperty("resource");
                Assert.True(seen.Add($"{resource.GetProperty("resourceType").GetString()}/{resource.GetProperty("id").GetString()}"));
            }

            next = page.GetProperty("link").EnumerateArray().FirstOrDefault(l => l.GetProperty("relation").GetString() == "next") is { ValueKind: JsonValueKind.Object } link
                ? link.GetProperty("url").GetString()![(loaded.Custodian.HttpUrl + "fhir/").Length..]
                : null;
        }

        Assert.Equal(expected, seen.Count);
        Assert.Contains($"Patient/{id}", seen);
    }

    [SyntheaFact]
    public async Task Include_adds_the_patients_of_the_matches()
    {
        var page = await GetAsync("Observation?code=http://loinc.org|8302-2&_count=5&_include=Observation:patient");
        var entries = page.GetProperty("entry").EnumerateArray().ToList();
        var matches = entries.Where(e => e.GetProperty("search").GetProperty("mode").GetString() == "match").ToList();
        var included = entries.Where(e => e.GetProperty("search").GetProperty("mode").GetString() == "include").Select(e => "Patient/" + e.GetProperty("resource").GetProperty("id").GetString()).ToHashSet();
        Assert.Equal(5, matches.Count);
        Assert.All(matches, m => Assert.Contains(m.GetProperty("resource").GetProperty("subject").GetProperty("reference").GetString()!, included));
    }

    [SyntheaFact]
    public async Task Sort_by_date_orders_every_page_newest_first()
    {
        var patientId = (await GetAsync("Patient?_count=1")).GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString()!;
        var dates = new List<string>();
        string? next = $"Observation?patient={patientId}&_sort=-date&_count=7";
        long total = 0;
        while (next is not null)
        {
            var page = await GetAsync(next);
            total = page.GetProperty("total").GetInt64();
            dates.AddRange(page.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("resource").GetProperty("effectiveDateTime").GetString()!));
            next = page.GetProperty("link").EnumerateArray().FirstOrDefault(l => l.GetProperty("relation").GetString() == "next") is { ValueKind: JsonValueKind.Object } link
                ? link.GetProperty("url").GetString()![(loaded.Custodian.HttpUrl + "fhir/").Length..]
                : null;
        }

        Assert.Equal(total, dates.Count);
        var instants = dates.Select(d => DateTimeOffset.Parse(d, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(instants.OrderByDescending(d => d), instants);
        using var badSort = await loaded.Cluster.Client.GetAsync(Fhir("Observation?_sort=code"), Token);
        Assert.Equal(HttpStatusCode.BadRequest, badSort.StatusCode);
    }

    [SyntheaFact]
    public async Task Paging_returns_every_match_once()
    {
        var total = await TotalAsync("Observation?code=http://loinc.org|8302-2");
        var seen = new HashSet<string>();
        var next = "Observation?code=http://loinc.org|8302-2&_count=7";
        var pages = 0;
        while (next is not null && pages++ < 1000)
        {
            var page = await GetAsync(next);
            Assert.Equal(total, page.GetProperty("total").GetInt64());
            foreach (var entry in page.TryGetProperty("entry", out var entries) ? entries.EnumerateArray() : default)
                Assert.True(seen.Add(entry.GetProperty("resource").GetProperty("id").GetString()!));
            next = page.GetProperty("link").EnumerateArray().FirstOrDefault(l => l.GetProperty("relation").GetString() == "next") is { ValueKind: JsonValueKind.Object } link
                ? link.GetProperty("url").GetString()![(loaded.Custodian.HttpUrl + "fhir/").Length..]
                : null;
        }

        Assert.Equal(total, seen.Count);
    }

    [SyntheaFact]
    public async Task No_patient_data_is_readable_in_any_file_the_nodes_wrote()
    {
        var secrets = new HashSet<string>(StringComparer.Ordinal);
        foreach (var patient in SyntheaData.PatientBundles.SelectMany(SyntheaData.Resources).Where(r => r.GetProperty("resourceType").GetString() == "Patient"))
        {
            foreach (var name in patient.GetProperty("name").EnumerateArray())
            {
                secrets.Add(name.GetProperty("family").GetString()!);
                foreach (var given in name.GetProperty("given").EnumerateArray())
                    secrets.Add(given.GetString()!);
            }

            foreach (var identifier in patient.GetProperty("identifier").EnumerateArray())
                secrets.Add(identifier.GetProperty("value").GetString()!);
            foreach (var address in patient.TryGetProperty("address", out var addresses) ? addresses.EnumerateArray() : default)
            {
                foreach (var line in address.GetProperty("line").EnumerateArray())
                    secrets.Add(line.GetString()!);
            }

            foreach (var telecom in patient.TryGetProperty("telecom", out var telecoms) ? telecoms.EnumerateArray() : default)
                secrets.Add(telecom.GetProperty("value").GetString()!);
            secrets.Add(patient.GetProperty("birthDate").GetString()!);
        }

        // Shorter values turn up by chance in megabytes of ciphertext and HMAC tokens.
        var needles = secrets.Where(s => s.Length >= 5)
            .SelectMany(s => new[] { (s, Encoding.UTF8.GetBytes(s)), (s, Encoding.Unicode.GetBytes(s)) }).ToList();
        var files = Directory.EnumerateFiles(loaded.Cluster.Root, "*", SearchOption.AllDirectories).ToList();
        Assert.NotEmpty(files);
        var found = new List<string>();
        foreach (var file in files)
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(file);
            }
            catch (IOException)
            {
                continue;
            }

            found.AddRange(needles.Where(n => bytes.AsSpan().IndexOf(n.Item2) >= 0).Select(n => $"{Path.GetRelativePath(loaded.Cluster.Root, file)} holds a patient value of {n.s.Length} characters: {Mask(n.s)}"));
        }

        var logs = string.Join('\n', loaded.Cluster.Nodes.Select(n => n.Output));
        found.AddRange(secrets.Where(s => s.Length >= 5 && logs.Contains(s, StringComparison.Ordinal)).Select(s => $"a node log holds a patient value of {s.Length} characters"));
        Assert.True(found.Count == 0, string.Join("\n", found));
    }

    // Enough to find the value again in the test data, not enough to read it in a CI log.
    private static string Mask(string value) => value[..2] + new string('*', value.Length - 2);

    [SyntheaFact]
    public async Task Every_patient_is_located_on_the_ledger_by_pseudonym_only()
    {
        var status = (await loaded.Cluster.TryStatusAsync(loaded.Custodian, Token))!;
        var entries = await loaded.Cluster.ReadAllEntriesAsync(loaded.Custodian, status.TreeSize, Token);
        var located = entries.Where(e => e.GetProperty("kind").GetString() == "RecordsLocated").ToList();
        Assert.Equal(SyntheaData.PatientBundles.Count(), located.Select(e => e.GetProperty("fields").GetProperty("patientKey").GetString()).Distinct().Count());
        Assert.All(located, e => Assert.Equal("node1", e.GetProperty("fields").GetProperty("custodian").GetString()));
    }

    [Theory]
    [InlineData("{not json", "application/fhir+json", 400)]
    [InlineData("{\"resourceType\":\"NoSuchType\"}", "application/fhir+json", 400)]
    [InlineData("{\"resourceType\":\"Patient\",\"birthDate\":\"not-a-date\"}", "application/fhir+json", 400)]
    [InlineData("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"fullUrl\":\"urn:uuid:3f1e2a54-6c4b-4f4a-9c1e-2b8d7f6a5e40\",\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"urn:uuid:0b9c4d1e-7a2f-4e3b-8c5d-6e7f8a9b0c1d\"}},\"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}]}", "application/fhir+json", 422)]
    [InlineData("{\"resourceType\":\"Bundle\",\"type\":\"transaction\"}", "text/plain", 415)]
    public async Task Bad_bundles_get_an_OperationOutcome_and_store_nothing(string body, string mediaType, int status)
    {
        var before = await TotalAsync("Observation");
        using var response = await loaded.PostBundleAsync(Encoding.UTF8.GetBytes(body), Token, mediaType);
        Assert.Equal(status, (int)response.StatusCode);
        var outcome = await response.Content.ReadFromJsonAsync<JsonElement>(Token);
        Assert.Equal("OperationOutcome", outcome.GetProperty("resourceType").GetString());
        Assert.Equal(before, await TotalAsync("Observation"));
    }

    [SyntheaFact]
    public async Task Batch_entries_succeed_or_fail_on_their_own()
    {
        var patientId = (await GetAsync("Patient?_count=1")).GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString()!;
        var before = await TotalAsync($"Observation?patient={patientId}");
        var batch = $$$"""
            {"resourceType":"Bundle","type":"batch","entry":[
              {"resource":{"resourceType":"Observation","status":"final","code":{"text":"batch test"},"subject":{"reference":"Patient/{{{patientId}}}"}},"request":{"method":"POST","url":"Observation"}},
              {"resource":{"resourceType":"Observation","status":"final","code":{"text":"batch test"},"subject":{"reference":"urn:uuid:0b9c4d1e-7a2f-4e3b-8c5d-6e7f8a9b0c1d"}},"request":{"method":"POST","url":"Observation"}}
            ]}
            """;
        using var response = await loaded.PostBundleAsync(Encoding.UTF8.GetBytes(batch), Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var result = await response.Content.ReadFromJsonAsync<JsonElement>(Token);
        Assert.Equal("batch-response", result.GetProperty("type").GetString());
        var statuses = result.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("response").GetProperty("status").GetString()).ToList();
        Assert.StartsWith("201", statuses[0]);
        Assert.Equal("422", statuses[1]);
        Assert.Equal(before + 1, await TotalAsync($"Observation?patient={patientId}"));

        // Leave the shared data as the bundles made it.
        var location = result.GetProperty("entry")[0].GetProperty("response").GetProperty("location").GetString()!;
        using var delete = new HttpRequestMessage(HttpMethod.Delete, Fhir(string.Join('/', location.Split('/').Take(2))));
        delete.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", loaded.OperatorToken);
        using (var deleted = await loaded.Cluster.Client.SendAsync(delete, Token))
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.Equal(before, await TotalAsync($"Observation?patient={patientId}"));
    }

    [Fact]
    public async Task A_huge_body_is_refused_with_413()
    {
        var huge = new byte[40 * 1024 * 1024];
        huge.AsSpan().Fill((byte)' ');
        "{\"resourceType\":\"Bundle\"}"u8.CopyTo(huge);
        using var request = new HttpRequestMessage(HttpMethod.Post, Fhir(string.Empty)) { Content = new ByteArrayContent(huge) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/fhir+json");
        request.Headers.ExpectContinue = true;
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", loaded.OperatorToken);
        using var response = await loaded.Cluster.Client.SendAsync(request, Token);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [Theory]
    [InlineData("Patient?family='; DROP TABLE current; --", 200)]
    [InlineData("Patient?identifier=%27%20OR%201%3D1%20--", 200)]
    [InlineData("Observation?date=ge2015-01-01'--", 400)]
    [InlineData("Observation?_count=100000", 400)]
    [InlineData("Patient?family=ab", 400)]
    [InlineData("NoSuchType?x=1", 404)]
    [InlineData("Patient/does-not-exist", 404)]
    public async Task Hostile_or_malformed_queries_get_a_clear_answer(string query, int status)
    {
        using var response = await loaded.Cluster.Client.GetAsync(Fhir(query), Token);
        Assert.Equal(status, (int)response.StatusCode);
        if (status != 200)
            Assert.Equal("OperationOutcome", (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("resourceType").GetString());
    }

    [Fact]
    public async Task Unknown_parameters_follow_the_handling_preference()
    {
        using var lenient = await loaded.Cluster.Client.GetAsync(Fhir("Patient?nonsense=1"), Token);
        Assert.Equal(HttpStatusCode.OK, lenient.StatusCode);
        using var request = new HttpRequestMessage(HttpMethod.Get, Fhir("Patient?nonsense=1"));
        request.Headers.Add("Prefer", "handling=strict");
        using var strict = await loaded.Cluster.Client.SendAsync(request, Token);
        Assert.Equal(HttpStatusCode.BadRequest, strict.StatusCode);
    }

    [Fact]
    public async Task Capability_statement_lists_the_search_parameters()
    {
        var statement = await GetAsync("metadata");
        Assert.Equal("CapabilityStatement", statement.GetProperty("resourceType").GetString());
        var patient = statement.GetProperty("rest")[0].GetProperty("resource").EnumerateArray().Single(r => r.GetProperty("type").GetString() == "Patient");
        var names = patient.GetProperty("searchParam").EnumerateArray().Select(p => p.GetProperty("name").GetString()).ToHashSet();
        Assert.Superset(new HashSet<string?> { "identifier", "name", "family", "gender", "birthdate", "_id", "_lastUpdated" }, names);
    }
}
