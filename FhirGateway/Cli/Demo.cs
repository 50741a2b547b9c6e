using Health.FhirGateway.Auth;
using Health.FhirGateway.Hosting;
using Health.FhirGateway.Records;
using Health.Ledger.Security;

namespace Health.FhirGateway.Cli;

/// <summary>The demo: three provider nodes in this process, on loopback, until Ctrl+C.</summary>
internal static class Demo
{
    public static async Task<int> RunAsync(DirectoryInfo data, DirectoryInfo? samples, int httpBasePort, int raftBasePort, CancellationToken token)
    {
        if (samples is { Exists: false })
            throw new CommandLineFailure($"--samples {samples.FullName} does not exist.");
        var members = NodeSettings.LoopbackTrio(httpBasePort, raftBasePort, "https");
        var certificates = Path.Combine(data.FullName, "certs");
        var authority = ConsortiumCertificates.EnsureAuthority(certificates);
        var apps = new List<WebApplication>();
        try
        {
            ConsortiumIdentity? anyIdentity = null;
            foreach (var member in members)
            {
                var certificate = Path.Combine(certificates, $"{member.NodeId}.pem");
                if (!File.Exists(certificate))
                    ConsortiumCertificates.IssueNode(certificates, certificates, member.NodeId, member.NodeId, [System.Net.IPAddress.Loopback], ["localhost"]);
                var identity = ConsortiumIdentity.Load(certificate, Path.Combine(certificates, $"{member.NodeId}.key"), authority);
                anyIdentity = identity;
                var settings = new NodeSettings(member.NodeId, member.HttpUrl, Path.Combine(data.FullName, member.NodeId), members)
                {
                    PseudonymKeyFile = Path.Combine(data.FullName, "consortium-pseudonym.key"),
                    DevIssuerKeyFile = Path.Combine(data.FullName, "dev-issuer.pem"),
                    Identity = identity,
                };
                apps.Add(await NodeHost.StartAsync(settings, token, l => l.SetMinimumLevel(LogLevel.Warning)).ConfigureAwait(false));
            }

            // The demo's own HTTP calls trust the consortium CA, as clients given consortium-ca.pem do.
            using var handler = new SocketsHttpHandler();
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                certificate is System.Security.Cryptography.X509Certificates.X509Certificate2 server && anyIdentity!.IsIssuedByConsortium(server);
            var bases = members.Select(m => new Uri(m.HttpUrl, "/fhir")).ToList();
            var first = members[0].HttpUrl.ToString().TrimEnd('/');
            var third = members[2].HttpUrl.ToString().TrimEnd('/');
            var issuer = DevTokenIssuer.LoadOrCreate(Path.Combine(data.FullName, "dev-issuer.pem"));
            var now = TimeProvider.System.GetUtcNow();
            string Mint(string subject, string role, string scope, Dictionary<string, string> claims) => issuer.Mint(subject, [role], scope.Split(' '), claims, TimeSpan.FromHours(12), now);
            var operatorToken = Mint("demo-operator", "operator", "system/*.cruds", []);
            var clinicianToken = Mint("demo-clinician", "clinician", "user/*.rs", new() { ["org"] = "node1", ["practitioner"] = "demo-practitioner" });
            var secondClinicianToken = Mint("demo-clinician-2", "clinician", "user/*.rs", new() { ["org"] = "node2", ["practitioner"] = "demo-practitioner-2" });
            var visitorToken = Mint("demo-visiting-clinician", "clinician", "user/*.rs", new() { ["org"] = "node3", ["practitioner"] = "visiting-practitioner" });
            var auditorToken = Mint("demo-auditor", "auditor", "user/*.rs", []);
            samples ??= DefaultSamples();
            string? patientId = null, patientKey = null;
            if (samples is { Exists: true })
            {
                var plan = SampleLoader.Plan(samples, members.Count);
                if (!File.Exists(Path.Combine(data.FullName, "samples-loaded")))
                {
                    await SampleLoader.LoadAsync(plan, bases, operatorToken, handler, token).ConfigureAwait(false);
                    await File.WriteAllTextAsync(Path.Combine(data.FullName, "samples-loaded"), samples.FullName, token).ConfigureAwait(false);
                }

                // A patient held by node1 and node2, to show a read gathered from two custodians.
                if (plan.FirstOrDefault(p => p.Nodes is [0, 1]) is { File: not null } shared && SocialSecurityNumber(shared.File) is { } number)
                {
                    patientKey = new PatientPseudonyms(NodeKeys.LoadOrCreate(Path.Combine(data.FullName, "consortium-pseudonym.key"))).KeyOf(PatientPseudonyms.SsnSystem, number);
                    patientId = await FirstPatientAsync(new Uri($"{first}/fhir/Patient?identifier={PatientPseudonyms.SsnSystem}|{number}"), clinicianToken, handler, token).ConfigureAwait(false);
                }
            }

            var patientToken = patientId is null ? "(no patient loaded)" : Mint("demo-patient", "patient", NodeCommands.DefaultScope("patient")!, new() { ["patient"] = patientId });
            var ca = Path.Combine(certificates, ConsortiumCertificates.AuthorityFile);
            var nodes = string.Join(Environment.NewLine, members.Select(m => $"  {m.NodeId}: {m.HttpUrl} (Raft {m.RaftEndPoint}, mutual TLS)"));
            Console.WriteLine($$$"""

                Health ledger demo: three provider nodes on loopback (data in {{{data.FullName}}})
                {{{nodes}}}
                Nodes speak mutual TLS to each other with certificates from the demo's consortium CA;
                clients trust it with --cacert {{{ca}}}

                Try:
                  export CA={{{ca}}}
                  curl -s --cacert $CA {{{first}}}/ledger/status
                  curl -s --cacert $CA -X POST {{{first}}}/ledger/entries -H 'Content-Type: application/json' \
                       -d '{"kind":"OperatorNote","fields":{"topic":"demo","note":"first note"}}'
                  curl -s --cacert $CA {{{first}}}/ledger/entries/1/receipt
                  curl -s --cacert $CA {{{first}}}/ledger/checkpoints/latest

                FHIR API (bearer tokens from the dev issuer, valid 12 hours; more with
                  dotnet run --project FhirGateway -- token --key {{{data.FullName}}}/dev-issuer.pem --role clinician --org node1):
                  export CLINICIAN='{{{clinicianToken}}}'    # a clinician of node1
                  export CLINICIAN2='{{{secondClinicianToken}}}'    # a clinician of node2
                  export VISITOR='{{{visitorToken}}}'    # a clinician of node3: needs the patient's grant
                  export PATIENT='{{{patientToken}}}'    # Patient/{{{patientId}}} at node1, also held by node2
                  export AUDITOR='{{{auditorToken}}}'
                  export OPERATOR='{{{operatorToken}}}'
                  curl -s --cacert $CA {{{first}}}/fhir/metadata
                  curl -s --cacert $CA -H "Authorization: Bearer $CLINICIAN" '{{{first}}}/fhir/Patient?gender=female&_count=5'
                  curl -s --cacert $CA -H "Authorization: Bearer $CLINICIAN" '{{{first}}}/fhir/Patient/{{{patientId}}}/$everything'

                Every clinician read is recorded on the ledger first (see the X-Ledger-Index header). node3
                holds nothing about the patient, yet gathers their records from node1 and node2 once the
                patient grants node3 (403 until then; a break-glass read goes through and is flagged).
                The patient is named by their consortium pseudonym here; a clinician may also use
                identifier={{{PatientPseudonyms.SsnSystem}}}|<SSN>:
                  curl -si --cacert $CA -H "Authorization: Bearer $VISITOR" '{{{third}}}/fhir/Patient/$everything?identifier={{{PatientPseudonyms.PatientKeySystem}}}|{{{patientKey}}}'
                  curl -si --cacert $CA -H "Authorization: Bearer $VISITOR" -H 'X-Purpose-Of-Use: ETREAT' \
                       -H 'X-Break-Glass-Reason: unconscious in the emergency department' \
                       '{{{third}}}/fhir/Patient/$everything?identifier={{{PatientPseudonyms.PatientKeySystem}}}|{{{patientKey}}}'
                  curl -s --cacert $CA -H "Authorization: Bearer $AUDITOR" {{{first}}}/ledger/access/<index>

                Consent portal: {{{first}}}/portal (sign in by pasting $PATIENT; grant node3, revoke, see who read what)

                Press Ctrl+C to stop.
                """);
            // Off the thread that delivered the signal: the command line waits on that one for the stop.
            await Task.Delay(Timeout.Infinite, token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing | ConfigureAwaitOptions.ForceYielding);
            Console.WriteLine("Stopping the nodes...");
            return 0;
        }
        finally
        {
            // All at once: stopping them one by one makes the last ones elect leaders among themselves first.
            await Task.WhenAll(apps.Select(app => app.StopAsync(CancellationToken.None))).ConfigureAwait(false);
            await Task.WhenAll(apps.Select(app => app.DisposeAsync().AsTask())).ConfigureAwait(false);

            Console.WriteLine("All nodes stopped.");
        }
    }

    private static string? SocialSecurityNumber(FileInfo bundle)
    {
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(bundle.FullName));
        return document.RootElement.GetProperty("entry").EnumerateArray()
            .Select(e => e.GetProperty("resource"))
            .Where(r => r.GetProperty("resourceType").GetString() == "Patient" && r.TryGetProperty("identifier", out _))
            .SelectMany(r => r.GetProperty("identifier").EnumerateArray())
            .Where(i => i.TryGetProperty("system", out var system) && system.GetString() == PatientPseudonyms.SsnSystem)
            .Select(i => i.GetProperty("value").GetString())
            .FirstOrDefault();
    }

    // The search names the patient's identifier, so a refusal is reported without the URL.
    private static async Task<string?> FirstPatientAsync(Uri search, string bearer, HttpMessageHandler handler, CancellationToken token)
    {
        using var client = new HttpClient(handler, disposeHandler: false);
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
        using var response = await client.GetAsync(search, token).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"The demo's clinician search for its sample patient on {search.Authority} was refused: {await CliHttp.DescribeRefusalAsync(response, token).ConfigureAwait(false)}");
        using var document = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync(token).ConfigureAwait(false));
        return document.RootElement.TryGetProperty("entry", out var entries) && entries.GetArrayLength() > 0
            ? entries[0].GetProperty("resource").GetProperty("id").GetString()
            : null;
    }

    // The sample patients beside the checkout (../shared/fhir/synthea-r4), found from the working
    // directory upwards; null when absent.
    private static DirectoryInfo? DefaultSamples()
    {
        for (var directory = new DirectoryInfo(Environment.CurrentDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = new DirectoryInfo(Path.Combine(directory.FullName, "..", "shared", "fhir", "synthea-r4"));
            if (File.Exists(Path.Combine(directory.FullName, "Health.sln")))
                return candidate.Exists ? candidate : null;
        }

        return null;
    }
}
