using Health.FhirGateway.Auth;
using Health.FhirGateway.Hosting;

namespace Health.FhirGateway.Cli;

/// <summary>The demo: three provider nodes in this process, on loopback, until Ctrl+C.</summary>
internal static class Demo
{
    public static async Task<int> RunAsync(DirectoryInfo data, DirectoryInfo? samples, int httpBasePort, int raftBasePort, CancellationToken token)
    {
        if (samples is { Exists: false })
            throw new CommandLineFailure($"--samples {samples.FullName} does not exist.");
        var members = NodeSettings.LoopbackTrio(httpBasePort, raftBasePort);
        var apps = new List<WebApplication>();
        try
        {
            foreach (var member in members)
            {
                var settings = new NodeSettings(member.NodeId, member.HttpUrl, Path.Combine(data.FullName, member.NodeId), members)
                {
                    PseudonymKeyFile = Path.Combine(data.FullName, "consortium-pseudonym.key"),
                    DevIssuerKeyFile = Path.Combine(data.FullName, "dev-issuer.pem"),
                };
                apps.Add(await NodeHost.StartAsync(settings, token, l => l.SetMinimumLevel(LogLevel.Warning)).ConfigureAwait(false));
            }

            var first = members[0].HttpUrl.ToString().TrimEnd('/');
            var issuer = DevTokenIssuer.LoadOrCreate(Path.Combine(data.FullName, "dev-issuer.pem"));
            var now = TimeProvider.System.GetUtcNow();
            var operatorToken = issuer.Mint("demo-operator", ["operator"], ["system/*.cruds"], new Dictionary<string, string>(), TimeSpan.FromHours(12), now);
            var clinicianToken = issuer.Mint("demo-clinician", ["clinician"], ["user/*.rs"], new Dictionary<string, string> { ["org"] = "node1", ["practitioner"] = "demo-practitioner" }, TimeSpan.FromHours(12), now);
            samples ??= DefaultSamples();
            if (samples is { Exists: true } && !File.Exists(Path.Combine(data.FullName, "samples-loaded")))
            {
                await SampleLoader.LoadAsync(samples, new Uri(first + "/fhir"), operatorToken, token).ConfigureAwait(false);
                await File.WriteAllTextAsync(Path.Combine(data.FullName, "samples-loaded"), samples.FullName, token).ConfigureAwait(false);
            }

            var patientId = await FirstPatientAsync(new Uri(first + "/fhir/Patient?_count=1"), clinicianToken, token).ConfigureAwait(false);
            var patientToken = patientId is null ? "(no patient loaded)" : issuer.Mint("demo-patient", ["patient"], NodeCommands.DefaultScope("patient")!.Split(' '), new Dictionary<string, string> { ["patient"] = patientId }, TimeSpan.FromHours(12), now);
            var visitorToken = issuer.Mint("demo-visiting-clinician", ["clinician"], ["user/*.rs"], new Dictionary<string, string> { ["org"] = "node2", ["practitioner"] = "visiting-practitioner" }, TimeSpan.FromHours(12), now);
            var nodes = string.Join(Environment.NewLine, members.Select(m => $"  {m.NodeId}: {m.HttpUrl} (Raft {m.RaftEndPoint})"));
            Console.WriteLine($$$"""

                Health ledger demo: three provider nodes on loopback (data in {{{data.FullName}}})
                {{{nodes}}}

                Try:
                  curl -s {{{first}}}/ledger/status
                  curl -s -X POST {{{first}}}/ledger/entries -H 'Content-Type: application/json' \
                       -d '{"kind":"OperatorNote","fields":{"topic":"demo","note":"first note"}}'
                  curl -s {{{first}}}/ledger/entries/1
                  curl -s {{{first}}}/ledger/entries/1/receipt
                  curl -s {{{first}}}/ledger/checkpoints/latest

                FHIR API (bearer tokens from the dev issuer; 12 hours; more with
                  dotnet run --project FhirGateway -- token --key {{{data.FullName}}}/dev-issuer.pem --role clinician):
                  export CLINICIAN='{{{clinicianToken}}}'    # a clinician of node1, the custodian
                  export VISITOR='{{{visitorToken}}}'    # a clinician of node2: needs the patient's grant
                  export OPERATOR='{{{operatorToken}}}'
                  export PATIENT='{{{patientToken}}}'    # Patient/{{{patientId}}}, sees only their own records
                  curl -s {{{first}}}/fhir/metadata
                  curl -s -H "Authorization: Bearer $CLINICIAN" '{{{first}}}/fhir/Patient?gender=female&_count=5'
                  curl -s -H "Authorization: Bearer $CLINICIAN" '{{{first}}}/fhir/Observation?code=http://loinc.org|8302-2&_summary=count'

                Every clinician read is recorded on the ledger first (see the X-Ledger-Index header):
                  curl -si -H "Authorization: Bearer $VISITOR" {{{first}}}/fhir/Patient/{{{patientId}}}    # 403 until the patient grants node2
                  curl -si -H "Authorization: Bearer $VISITOR" -H 'X-Purpose-Of-Use: ETREAT' \
                       -H 'X-Break-Glass-Reason: unconscious in the emergency department' {{{first}}}/fhir/Patient/{{{patientId}}}

                Consent portal: {{{first}}}/portal (sign in by pasting $PATIENT; grant node2, revoke, see who read what)

                Press Ctrl+C to stop.
                """);
            await Task.Delay(Timeout.Infinite, token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return 0;
        }
        finally
        {
            foreach (var app in apps)
            {
                await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
                await app.DisposeAsync().ConfigureAwait(false);
            }

            Console.WriteLine("All nodes stopped.");
        }
    }

    private static async Task<string?> FirstPatientAsync(Uri search, string bearer, CancellationToken token)
    {
        using var client = new HttpClient();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
        using var document = System.Text.Json.JsonDocument.Parse(await client.GetStringAsync(search, token).ConfigureAwait(false));
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
