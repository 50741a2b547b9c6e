using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Health.Bench.Load;

/// <summary>The driver's scenarios, each on the cluster it is given, each bounded in requests and time.</summary>
internal sealed class Scenarios(NodeCluster cluster, DirectoryInfo samples, TimeSpan limit)
{
    private const string ReaderOrganization = "clinic-north";
    private static readonly MediaTypeHeaderValue FhirJson = new("application/fhir+json");

    /// <summary>The name of a run of <see cref="AppendsAsync"/> in the driver's table.</summary>
    public const string AppendsName = "ledger appends";

    /// <summary>Raw ledger appends (~300-byte operator notes) to the leader, as the etcd comparison sends puts.</summary>
    public async Task<LoadResult> AppendsAsync(int clients, int requests, CancellationToken token)
        => await LoadRun.RunAsync(AppendsName, cluster, clients, requests, limit, await AppendRequestAsync(token).ConfigureAwait(false), token).ConfigureAwait(false);

    /// <summary>
    /// The ledger growing to <paramref name="entries"/> by appends at <paramref name="clients"/>
    /// clients, measured in steps of <paramref name="step"/>: throughput should stay flat and memory bounded.
    /// </summary>
    public async Task<IReadOnlyList<LoadResult>> GrowthAsync(int clients, int entries, int step, CancellationToken token)
    {
        var append = await AppendRequestAsync(token).ConfigureAwait(false);
        var results = new List<LoadResult> { await LoadRun.RunAsync($"appends, ledger at 0 → {step:N0}", cluster, clients, step, limit, append, token).ConfigureAwait(false) };
        for (var size = 2 * step; size <= entries; size += step)
            results.Add(await LoadRun.ContinueAsync($"appends, ledger at {size - step:N0} → {size:N0}", cluster, clients, step, limit, append, token).ConfigureAwait(false));
        return results;
    }

    private async Task<LoadRun.Request> AppendRequestAsync(CancellationToken token)
    {
        var leader = await cluster.LeaderAsync(token).ConfigureAwait(false);
        var body = NoteBody("bench");
        return (_, ct) => PostAppendAsync(cluster.Client, leader, body, ct);
    }

    /// <summary>A ~300-byte operator note as an append request body, as the etcd comparison's values.</summary>
    public static byte[] NoteBody(string topic)
    {
        var note = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(225));
        return Encoding.UTF8.GetBytes($$$"""{"kind":"OperatorNote","fields":{"topic":"{{{topic}}}","note":"{{{note}}}"}}""");
    }

    /// <summary>Appends one entry at a leader; true when it was committed (201).</summary>
    public static async Task<bool> PostAppendAsync(HttpClient client, Uri leader, byte[] body, CancellationToken token)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await client.PostAsync(new Uri(leader, "/ledger/entries"), content, token).ConfigureAwait(false);
        return response.StatusCode == HttpStatusCode.Created;
    }

    /// <summary>Consent-gated, audited reads of a granted patient by a clinician of another organisation.</summary>
    public async Task<LoadResult> ReadsAsync(Patients patients, int clients, int requests, CancellationToken token)
        => await LoadRun.RunAsync("consent-gated reads", cluster, clients, requests, limit,
            (sequence, ct) => ReadAsync(patients, sequence, ct), token).ConfigureAwait(false);

    /// <summary>90 % gated reads, 9 % new Observations stored at the custodian, 1 % new consent grants.</summary>
    public async Task<LoadResult> MixedAsync(Patients patients, int clients, int requests, CancellationToken token)
        => await LoadRun.RunAsync("mixed 90/9/1", cluster, clients, requests, limit, (sequence, ct) => (sequence % 100) switch
        {
            < 90 => ReadAsync(patients, sequence, ct),
            < 99 => CreateObservationAsync(patients, sequence, ct),
            _ => GrantAsync(patients, sequence % patients.Ids.Count, ct),
        }, token).ConfigureAwait(false);

    /// <summary>
    /// <c>Patient/$everything</c> at node2, which holds nothing about the patients: it records a request
    /// per custodian on the ledger and fetches node1's records over the member API.
    /// </summary>
    public async Task<LoadResult> EverythingAsync(Patients patients, int clients, int requests, CancellationToken token)
        => await LoadRun.RunAsync("cross-node $everything", cluster, clients, requests, limit, async (sequence, ct) =>
        {
            var key = patients.Keys[sequence % patients.Keys.Count];
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(cluster.Urls[1], $"/fhir/Patient/$everything?identifier=urn:health-ledger:patient-key|{key}&_count=50"));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", patients.ReaderToken);
            using var response = await cluster.Client.SendAsync(request, ct).ConfigureAwait(false);
            return response.StatusCode == HttpStatusCode.OK;
        }, token).ConfigureAwait(false);

    /// <summary>
    /// Synthea patient bundles posted to node1 as transactions, <paramref name="inFlight"/> at a time,
    /// after the organisations and practitioners they refer to: a bulk load. Each post stores its
    /// patient anew (new ids), so the set can be sent again and again; the figure that matters is
    /// resources stored per second, with encryption.
    /// </summary>
    public async Task<LoadResult> IngestAsync(int inFlight, int bundles, CancellationToken token)
    {
        var operatorToken = await cluster.TokenAsync("--role", "operator").ConfigureAwait(false);
        var (infrastructure, patients) = SampleBundles();
        foreach (var file in infrastructure)
            await PostBundleAsync(file, operatorToken, token).ConfigureAwait(false);
        var bodies = await Task.WhenAll(patients.Select(f => File.ReadAllBytesAsync(f.FullName, token))).ConfigureAwait(false);
        var resources = bodies.Select(static b =>
        {
            using var bundle = JsonDocument.Parse(b);
            return bundle.RootElement.GetProperty("entry").GetArrayLength();
        }).ToArray();
        return await LoadRun.RunAsync($"Synthea ingest, {inFlight} bundle{(inFlight == 1 ? string.Empty : "s")} in flight", cluster, inFlight, bundles, limit, async (sequence, ct) =>
        {
            using var response = await SendBundleAsync(bodies[sequence % bodies.Length], operatorToken, ct).ConfigureAwait(false);
            return response.StatusCode == HttpStatusCode.OK;
        }, token, sequence => resources[sequence % resources.Length]).ConfigureAwait(false);
    }

    /// <summary>Loads the organisations, practitioners and <paramref name="count"/> patients at node1, each granting the reader's organisation.</summary>
    public async Task<Patients> LoadPatientsAsync(int count, CancellationToken token)
    {
        var operatorToken = await cluster.TokenAsync("--role", "operator").ConfigureAwait(false);
        var (infrastructure, patientFiles) = SampleBundles();
        var ids = new List<string>();
        foreach (var file in infrastructure.Concat(patientFiles.Take(count)))
        {
            var answer = await PostBundleAsync(file, operatorToken, token).ConfigureAwait(false);
            ids.AddRange(answer.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("response").GetProperty("location").GetString()!)
                .Where(l => l.StartsWith("Patient/", StringComparison.Ordinal)).Select(l => l.Split('/')[1]));
        }

        var patientTokens = new List<string>();
        foreach (var id in ids)
            patientTokens.Add(await cluster.TokenAsync("--role", "patient", "--patient", id).ConfigureAwait(false));
        var patients = new Patients(ids, await LocatedKeysAsync(token).ConfigureAwait(false), patientTokens,
            await cluster.TokenAsync("--role", "clinician", "--org", ReaderOrganization, "--practitioner", "load-reader").ConfigureAwait(false), operatorToken);
        for (var i = 0; i < ids.Count; i++)
        {
            if (!await GrantAsync(patients, i, token).ConfigureAwait(false))
                throw new InvalidOperationException($"Patient {i} could not grant access.");
        }

        return patients;
    }

    // The sample folder's bundles: organisations and practitioners first (the patients' bundles refer to them), then the patients, by name.
    private (IReadOnlyList<FileInfo> Infrastructure, IReadOnlyList<FileInfo> Patients) SampleBundles()
    {
        var files = samples.EnumerateFiles("*.json").OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
        static bool IsInfrastructure(FileInfo f) => f.Name.StartsWith("hospitalInformation", StringComparison.Ordinal) || f.Name.StartsWith("practitionerInformation", StringComparison.Ordinal);
        return (files.Where(IsInfrastructure).ToList(), files.Where(f => !IsInfrastructure(f)).ToList());
    }

    // Posts a bundle that must be accepted, and returns the transaction's answer.
    private async Task<JsonElement> PostBundleAsync(FileInfo file, string operatorToken, CancellationToken token)
    {
        using var response = await SendBundleAsync(await File.ReadAllBytesAsync(file.FullName, token).ConfigureAwait(false), operatorToken, token).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
            throw new InvalidOperationException($"{file.Name} was refused with {(int)response.StatusCode}.");
        return await response.Content.ReadFromJsonAsync<JsonElement>(token).ConfigureAwait(false);
    }

    private async Task<HttpResponseMessage> SendBundleAsync(byte[] bundle, string operatorToken, CancellationToken token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(cluster.Urls[0], "/fhir")) { Content = new ByteArrayContent(bundle) };
        request.Content.Headers.ContentType = FhirJson;
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", operatorToken);
        return await cluster.Client.SendAsync(request, token).ConfigureAwait(false);
    }

    private async Task<bool> ReadAsync(Patients patients, int sequence, CancellationToken token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(cluster.Urls[0], $"/fhir/Patient/{patients.Ids[sequence % patients.Ids.Count]}"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", patients.ReaderToken);
        using var response = await cluster.Client.SendAsync(request, token).ConfigureAwait(false);
        return response.StatusCode == HttpStatusCode.OK;
    }

    private async Task<bool> CreateObservationAsync(Patients patients, int sequence, CancellationToken token)
    {
        var body = $$$"""
            {"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
             "code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},
             "subject":{"reference":"Patient/{{{patients.Ids[sequence % patients.Ids.Count]}}}"},"effectiveDateTime":"2026-11-01T08:00:00Z",
             "valueQuantity":{"value":{{{60 + (sequence % 40)}}},"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}
            """;
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(cluster.Urls[0], "/fhir/Observation")) { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = FhirJson;
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", patients.OperatorToken);
        using var response = await cluster.Client.SendAsync(request, token).ConfigureAwait(false);
        return response.StatusCode == HttpStatusCode.Created;
    }

    private async Task<bool> GrantAsync(Patients patients, int patient, CancellationToken token)
    {
        var body = $$$"""
            {"resourceType":"Consent","status":"active",
             "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
             "category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
             "patient":{"reference":"Patient/{{{patients.Ids[patient]}}}"},
             "provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},"reference":{"reference":"Organization/{{{ReaderOrganization}}}"}}],
               "purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}]}}
            """;
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(cluster.Urls[0], "/fhir/Consent")) { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = FhirJson;
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", patients.PatientTokens[patient]);
        using var response = await cluster.Client.SendAsync(request, token).ConfigureAwait(false);
        return response.StatusCode == HttpStatusCode.Created;
    }

    // The patients' consortium pseudonyms, from the locators node1 put on the ledger.
    private async Task<IReadOnlyList<string>> LocatedKeysAsync(CancellationToken token)
    {
        var page = await cluster.Client.GetFromJsonAsync<JsonElement>(new Uri(cluster.Urls[0], "/ledger/entries?from=1&count=1000"), token).ConfigureAwait(false);
        return page.GetProperty("entries").EnumerateArray()
            .Where(e => e.GetProperty("kind").GetString() == "RecordsLocated")
            .Select(e => e.GetProperty("fields").GetProperty("patientKey").GetString()!).Distinct(StringComparer.Ordinal).ToList();
    }
}

/// <summary>The patients loaded at node1, with the tokens the scenarios use.</summary>
internal sealed record Patients(IReadOnlyList<string> Ids, IReadOnlyList<string> Keys, IReadOnlyList<string> PatientTokens, string ReaderToken, string OperatorToken);
