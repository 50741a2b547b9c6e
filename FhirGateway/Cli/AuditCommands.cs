using System.CommandLine;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Health.FhirGateway.Audit;

namespace Health.FhirGateway.Cli;

/// <summary><c>health-node audit</c>: take the access log away (export) and check it without any node (verify).</summary>
internal static class AuditCommands
{
    public static Command Create()
    {
        var audit = new Command("audit", "Export the audit log from a running node and verify an export offline.");
        audit.Subcommands.Add(ExportCommand());
        audit.Subcommands.Add(VerifyCommand());
        return audit;
    }

    private static Command ExportCommand()
    {
        var url = new Option<string>("--url") { Description = "The node, for example https://127.0.0.1:8081.", Required = true };
        var token = new Option<string>("--token") { Description = "An auditor's bearer token.", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder to write the export into.", Required = true };
        var authority = new Option<FileInfo>("--cacert") { Description = "The consortium CA, to trust the node's HTTPS certificate." };
        var patient = new Option<string>("--patient") { Description = "Only one patient: urn:health-ledger:patient-key|key or http://hl7.org/fhir/sid/us-ssn|value." };
        var organization = new Option<string>("--org") { Description = "Only accesses by or at this organisation." };
        var since = new Option<string>("--since") { Description = "Only entries recorded at or after this instant (ISO 8601)." };
        var command = new Command("export", "Export AuditEvents with the ledger entries, checkpoints and proofs that let them be verified.") { url, token, output, authority, patient, organization, since };
        command.SetAction(async (result, cancel) =>
        {
            var node = CliHttp.NodeUrl(result.GetValue(url));
            using var handler = CliHttp.Handler(result.GetValue(authority));

            using var client = new HttpClient(handler) { Timeout = TimeSpan.FromMinutes(10) };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", result.GetValue(token));
            var query = new List<string> { "_type=AuditEvent" };
            if (result.GetValue(patient) is { } p)
                query.Add("patient=" + Uri.EscapeDataString(p));
            if (result.GetValue(organization) is { } o)
                query.Add("organization=" + Uri.EscapeDataString(o));
            if (result.GetValue(since) is { } s)
                query.Add("_since=" + Uri.EscapeDataString(s));
            using var kickOff = new HttpRequestMessage(HttpMethod.Get, new Uri(node, "/fhir/$export?" + string.Join('&', query)));
            kickOff.Headers.Add("Prefer", "respond-async");
            using var started = await Send(client, kickOff, cancel).ConfigureAwait(false);
            if (started.StatusCode != HttpStatusCode.Accepted || started.Content.Headers.ContentLocation is not { } status)
                throw new CommandLineFailure($"The node refused the export: {await CliHttp.DescribeRefusalAsync(started, cancel).ConfigureAwait(false)}");

            JsonElement manifest = default;
            for (var attempt = 0; manifest.ValueKind == JsonValueKind.Undefined; attempt++)
            {
                if (attempt == 900)
                    throw new CommandLineFailure("The export did not finish within half an hour.");
                using var polled = await Send(client, new HttpRequestMessage(HttpMethod.Get, status), cancel).ConfigureAwait(false);
                if (polled.StatusCode == HttpStatusCode.Accepted)
                    continue;
                if (polled.StatusCode != HttpStatusCode.OK)
                    throw new CommandLineFailure($"The export failed: {await CliHttp.DescribeRefusalAsync(polled, cancel).ConfigureAwait(false)}");
                manifest = await polled.Content.ReadFromJsonAsync<JsonElement>(cancel).ConfigureAwait(false);
            }

            var folder = Directory.CreateDirectory(result.GetValue(output)!.FullName);
            foreach (var file in manifest.GetProperty("output").EnumerateArray())
            {
                var fileUrl = new Uri(file.GetProperty("url").GetString()!);
                using var download = await Send(client, new HttpRequestMessage(HttpMethod.Get, fileUrl), cancel).ConfigureAwait(false);
                var target = Path.Combine(folder.FullName, Path.GetFileName(fileUrl.AbsolutePath));
                var stream = File.Create(target);
                await using (stream.ConfigureAwait(false))
                    await download.Content.CopyToAsync(stream, cancel).ConfigureAwait(false);
            }

            var summary = manifest.GetProperty("extension").GetProperty("manifest");
            Console.WriteLine($"Exported {summary.GetProperty("events").GetInt64()} AuditEvents over {summary.GetProperty("treeSize").GetInt64()} ledger entries and {summary.GetProperty("checkpoints").GetInt32()} checkpoints to {folder.FullName}");
            return 0;
        });
        return command;
    }

    private static Command VerifyCommand()
    {
        var folder = new Argument<DirectoryInfo>("folder") { Description = "An export folder made by `health-node audit export`." };
        var authority = new Option<FileInfo>("--ca") { Description = "The consortium CA certificate (PEM) the checkpoint signers' certificates must chain to.", Required = true };
        var command = new Command("verify", "Verify an export offline: signatures, proofs, entries, events; exits non-zero on any failure.") { folder, authority };
        command.SetAction(result =>
        {
            var directory = result.GetValue(folder)!;
            if (!directory.Exists)
                throw new CommandLineFailure($"{directory.FullName} does not exist.");
            X509Certificate2 ca;
            try
            {
                ca = X509CertificateLoader.LoadCertificateFromFile(result.GetValue(authority)!.FullName);
            }
            catch (Exception e) when (e is CryptographicException or IOException)
            {
                throw new CommandLineFailure($"--ca could not be read: {e.Message}");
            }

            var started = System.Diagnostics.Stopwatch.StartNew();
            var report = AuditVerifier.Verify(directory.FullName, ca);
            var seconds = started.Elapsed.TotalSeconds;
            foreach (var failure in report.Failures)
                Console.WriteLine($"FAIL {failure}");
            Console.WriteLine($"{(report.Passed ? "VERIFIED" : "NOT VERIFIED")}: {report.Entries} entries, {report.Events} AuditEvents, {report.Checkpoints} checkpoints, {report.Failures.Count} failures in {seconds:0.00} s ({report.Entries / Math.Max(seconds, 1e-6):0} entries/s)");
            return report.Passed ? 0 : 1;
        });
        return command;
    }

    private static async Task<HttpResponseMessage> Send(HttpClient client, HttpRequestMessage request, CancellationToken cancel)
    {
        try
        {
            return await client.SendAsync(request, cancel).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new CommandLineFailure($"{request.RequestUri}: {e.Message}");
        }
        finally
        {
            request.Dispose();
        }
    }
}
