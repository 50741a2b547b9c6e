using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Health.Cluster.Tests.Fhir;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Task = System.Threading.Tasks.Task;

namespace Health.Cluster.Tests.Federation;

/// <summary>An auditor exports the access log from a node and checks it offline; every kind of tampering is named.</summary>
public sealed class AuditExportTests
{
    private static async Task<HttpStatusCode> ReadAsync(LedgerCluster cluster, Uri uri, string token, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        foreach (var (name, value) in headers)
            request.Headers.Add(name, value);
        using var response = await cluster.Client.SendAsync(request);
        return response.StatusCode;
    }

    private static string Copy(string folder, string name)
    {
        var copy = Path.Combine(Path.GetDirectoryName(folder)!, name);
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(folder))
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        return copy;
    }

    private static async Task<string> VerifyFailsAsync(string folder, string ca)
    {
        var (exitCode, output, _) = await NodeProcess.RunToolForExitCodeAsync(["audit", "verify", folder, "--ca", ca]);
        Assert.Equal(1, exitCode);
        Assert.Contains("NOT VERIFIED", output, StringComparison.Ordinal);
        return output;
    }

    private static void EditLine(string file, int line, Func<string, string> edit)
    {
        var lines = File.ReadAllLines(file);
        lines[line] = edit(lines[line]);
        File.WriteAllLines(file, lines);
    }

    private static string FlipHex(string text, string property)
    {
        var node = JsonNode.Parse(text)!;
        var value = node[property] is JsonArray array ? array[0]!.GetValue<string>() : node[property]!.GetValue<string>();
        var flipped = (value[0] == '0' ? '1' : '0') + value[1..];
        if (node[property] is JsonArray list)
            list[0] = flipped;
        else
            node[property] = flipped;
        return node.ToJsonString();
    }

    [SyntheaFact]
    public async Task Export_verifies_offline_and_every_tampering_is_named()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var cancel = timeout.Token;
        using var cluster = LedgerCluster.WithTls();
        try
        {
            await cluster.WaitForLeaderAsync(cancel);
            var node = cluster.Nodes[0];
            var operatorToken = await cluster.MintTokenAsync("--role", "operator");
            using (var request = new HttpRequestMessage(HttpMethod.Post, new Uri(node.HttpUrl, "/fhir")) { Content = new ByteArrayContent(File.ReadAllBytes(SyntheaData.PatientBundles.First())) })
            {
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/fhir+json");
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", operatorToken);
                using var response = await cluster.Client.SendAsync(request, cancel);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            var own = await cluster.MintTokenAsync("--role", "clinician", "--org", "node1", "--practitioner", "p1");
            var stranger = await cluster.MintTokenAsync("--role", "clinician", "--org", "clinic-x");
            var patients = await GetJsonAsync(cluster, new Uri(node.HttpUrl, "/fhir/Patient?_count=1"), own);
            var patient = patients.GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString()!;
            Assert.Equal(HttpStatusCode.OK, await ReadAsync(cluster, new Uri(node.HttpUrl, $"/fhir/Patient/{patient}"), own));
            Assert.Equal(HttpStatusCode.Forbidden, await ReadAsync(cluster, new Uri(node.HttpUrl, $"/fhir/Patient/{patient}"), stranger));
            Assert.Equal(HttpStatusCode.OK, await ReadAsync(cluster, new Uri(node.HttpUrl, $"/fhir/Patient/{patient}"), stranger, ("X-Purpose-Of-Use", "ETREAT"), ("X-Break-Glass-Reason", "collapsed in the waiting room")));
            var patientToken = await cluster.MintTokenAsync("--role", "patient", "--patient", patient);
            using (var grant = new HttpRequestMessage(HttpMethod.Post, new Uri(node.HttpUrl, "/fhir/Consent"))
            {
                Content = new StringContent(ConsentTests.ConsentJson(patient, "clinic-x"), Encoding.UTF8, "application/fhir+json"),
            })
            {
                grant.Headers.Authorization = new AuthenticationHeaderValue("Bearer", patientToken);
                using var granted = await cluster.Client.SendAsync(grant, cancel);
                Assert.Equal(HttpStatusCode.Created, granted.StatusCode);
            }

            Assert.Equal(HttpStatusCode.OK, await ReadAsync(cluster, new Uri(node.HttpUrl, $"/fhir/Patient/{patient}"), stranger));
            await Task.Delay(TimeSpan.FromSeconds(1.5), cancel); // the leader signs a checkpoint at least every second

            var folder = Path.Combine(cluster.Root, "export");
            var ca = Path.Combine(cluster.AuthorityFolder, "consortium-ca.pem");
            var auditor = await cluster.MintTokenAsync("--role", "auditor");
            var exported = await NodeProcess.RunToolAsync(["audit", "export", "--url", node.HttpUrl.ToString(), "--token", auditor, "--out", folder, "--cacert", ca]);
            Assert.Contains("Exported", exported, StringComparison.Ordinal);
            var (exitCode, verified, _) = await NodeProcess.RunToolForExitCodeAsync(["audit", "verify", folder, "--ca", ca]);
            Assert.True(exitCode == 0, verified);
            Assert.Contains("VERIFIED", verified, StringComparison.Ordinal);

            // Export ids and file names are looked up, never joined into a path: traversal finds nothing.
            foreach (var traversal in new[] { "/fhir/$export-file/..%2F..%2Fledger/ledger.db", "/fhir/$export-file/x/..%2F..%2F..%2Fetc%2Fpasswd", "/fhir/$export-status/..%2F..%2Fledger" })
                Assert.Equal(HttpStatusCode.NotFound, await ReadAsync(cluster, new Uri(node.HttpUrl, traversal), auditor));

            // The events parse as FHIR R4 and carry the BALP elements.
            var lines = File.ReadAllLines(Path.Combine(folder, "AuditEvent.ndjson"));
            var events = lines.Select(l => JsonSerializer.Deserialize<AuditEvent>(l, new JsonSerializerOptions().ForFhir())!).ToList();
            var accesses = events.Where(e => e.Type.Code == "rest" && e.Subtype.Any(s => s.Code == "read")).ToList();
            Assert.Equal(4, accesses.Count);
            Assert.All(accesses, e =>
            {
                Assert.NotNull(e.Recorded);
                Assert.Equal(AuditEvent.AuditEventAction.R, e.Action);
                Assert.Contains(e.Agent, a => a.Requestor == true && a.PurposeOfUse.Count == 1);
                Assert.Equal("urn:health-ledger:patient-key", e.Entity[0].What?.Identifier?.System);
                Assert.NotNull(e.Source.Observer);
            });
            Assert.Equal(3, accesses.Count(e => e.Outcome == AuditEvent.AuditEventOutcome.N0));
            Assert.Contains(accesses, e => e.Outcome == AuditEvent.AuditEventOutcome.N4);
            Assert.Contains(accesses, e => e.Meta?.Security.Any(s => s.Code == "BTG") == true);
            Assert.Contains(accesses, e => e.Agent[0].Policy.Any(p => p?.StartsWith("Consent/", StringComparison.Ordinal) == true));
            Assert.Contains(events, e => e.Subtype.Any(s => s.Code == "create"));
            // The same events through the auditor's search, by patient and outcome, paged.
            var key = accesses[0].Entity[0].What!.Identifier!.Value;
            var denials = await GetJsonAsync(cluster, new Uri(node.HttpUrl, $"/fhir/AuditEvent?patient=urn:health-ledger:patient-key|{key}&outcome=4"), auditor);
            Assert.Equal(1, denials.GetProperty("total").GetInt32());
            var deniedLine = JsonNode.Parse(lines.Single(l => l.Contains("\"outcome\":\"4\"", StringComparison.Ordinal)))!;
            Assert.Equal(deniedLine["id"]!.GetValue<string>(), denials.GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString());
            var firstPage = await GetJsonAsync(cluster, new Uri(node.HttpUrl, $"/fhir/AuditEvent?patient=urn:health-ledger:patient-key|{key}&_count=2"), auditor);
            Assert.Equal(5, firstPage.GetProperty("total").GetInt32());
            Assert.Contains(firstPage.GetProperty("link").EnumerateArray(), l => l.GetProperty("relation").GetString() == "next");
            Assert.Equal(HttpStatusCode.Forbidden, await ReadAsync(cluster, new Uri(node.HttpUrl, "/fhir/AuditEvent"), own));

            Assert.DoesNotContain("waiting room", string.Concat(Directory.GetFiles(folder).Select(File.ReadAllText)), StringComparison.Ordinal);

            var eventsFile = Path.Combine(Copy(folder, "event-edited"), "AuditEvent.ndjson");
            EditLine(eventsFile, 1, l => l.Replace("T", "X", StringComparison.Ordinal));
            Assert.Contains("does not match its ledger entry", await VerifyFailsAsync(Path.GetDirectoryName(eventsFile)!, ca), StringComparison.Ordinal);

            var proofs = Path.Combine(Copy(folder, "proof-edited"), "proofs.ndjson");
            EditLine(proofs, 0, l => FlipHex(l, "path"));
            Assert.Contains("inclusion proof", await VerifyFailsAsync(Path.GetDirectoryName(proofs)!, ca), StringComparison.Ordinal);

            var rootEdited = Path.Combine(Copy(folder, "checkpoint-edited"), "checkpoints.ndjson");
            EditLine(rootEdited, 0, l => FlipHex(l, "root"));
            Assert.Contains("signature", await VerifyFailsAsync(Path.GetDirectoryName(rootEdited)!, ca), StringComparison.Ordinal);

            var signatureEdited = Path.Combine(Copy(folder, "signature-edited"), "checkpoints.ndjson");
            EditLine(signatureEdited, 0, l =>
            {
                var checkpoint = JsonNode.Parse(l)!;
                var signature = Convert.FromBase64String(checkpoint["signature"]!.GetValue<string>());
                signature[^1] ^= 1;
                checkpoint["signature"] = Convert.ToBase64String(signature);
                return checkpoint.ToJsonString();
            });
            Assert.Contains("signature", await VerifyFailsAsync(Path.GetDirectoryName(signatureEdited)!, ca), StringComparison.Ordinal);

            var deleted = Path.Combine(Copy(folder, "event-deleted"), "AuditEvent.ndjson");
            File.WriteAllLines(deleted, lines.Where((_, i) => i != 1));
            Assert.Contains("is missing", await VerifyFailsAsync(Path.GetDirectoryName(deleted)!, ca), StringComparison.Ordinal);

            var reordered = Path.Combine(Copy(folder, "events-reordered"), "AuditEvent.ndjson");
            File.WriteAllLines(reordered, [lines[1], lines[0], .. lines.Skip(2)]);
            Assert.Contains("out of order", await VerifyFailsAsync(Path.GetDirectoryName(reordered)!, ca), StringComparison.Ordinal);

            // A checkpoint re-signed by a key no certified node holds.
            var forged = Path.Combine(Copy(folder, "checkpoint-forged"), "checkpoints.ndjson");
            EditLine(forged, 0, l =>
            {
                var checkpoint = JsonNode.Parse(l)!;
                using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                var treeSize = checkpoint["treeSize"]!.GetValue<long>();
                var root = Convert.FromHexString(checkpoint["root"]!.GetValue<string>());
                checkpoint["keyId"] = Convert.ToHexStringLower(SHA256.HashData(key.ExportSubjectPublicKeyInfo()));
                checkpoint["signature"] = Convert.ToBase64String(key.SignData([.. BitConverter.GetBytes(treeSize), .. root], HashAlgorithmName.SHA256));
                return checkpoint.ToJsonString();
            });
            Assert.Contains("no certified signer", await VerifyFailsAsync(Path.GetDirectoryName(forged)!, ca), StringComparison.Ordinal);

            var entryDeleted = Path.Combine(Copy(folder, "entry-deleted"), "entries.ndjson");
            var entries = File.ReadAllLines(entryDeleted);
            File.WriteAllLines(entryDeleted, entries.Where((_, i) => i != 2));
            Assert.Contains("missing", await VerifyFailsAsync(Path.GetDirectoryName(entryDeleted)!, ca), StringComparison.Ordinal);
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(cluster.Diagnostics(), e);
        }
    }

    private static async Task<JsonElement> GetJsonAsync(LedgerCluster cluster, Uri uri, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await cluster.Client.SendAsync(request);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }
}
