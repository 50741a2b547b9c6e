using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Health.Cluster.Tests.Fhir;

namespace Health.Cluster.Tests;

/// <summary>The README's main command: the demo starts, answers a query with a token it printed, and stops on SIGINT.</summary>
public sealed partial class DemoTests
{
    [SyntheaFact]
    public async Task Demo_starts_answers_with_its_printed_token_and_stops_on_sigint()
    {
        var root = Directory.CreateTempSubdirectory("demo-").FullName;
        var samples = Directory.CreateDirectory(Path.Combine(root, "samples")).FullName;
        foreach (var file in SyntheaData.OrganizationAndPractitionerBundles.Concat(SyntheaData.PatientBundles.Take(2)))
            File.Copy(file, Path.Combine(samples, Path.GetFileName(file)));
        int httpBase, raftBase;
        do
        {
            httpBase = NodeProcess.FreePort();
        }
        while (NodeProcess.FreePort() != httpBase + 1 || NodeProcess.FreePort() != httpBase + 2 || NodeProcess.FreePort() != httpBase + 3);
        do
        {
            raftBase = NodeProcess.FreePort();
        }
        while (NodeProcess.FreePort() != raftBase + 1 || NodeProcess.FreePort() != raftBase + 2 || NodeProcess.FreePort() != raftBase + 3);

        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { NodeProcess.Executable, "demo", "--data", Path.Combine(root, "data"), "--samples", samples,
                     "--http-base-port", httpBase.ToString(System.Globalization.CultureInfo.InvariantCulture), "--raft-base-port", raftBase.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var output = new StringBuilder();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            lock (output)
                output.AppendLine(e.Data);
            if (e.Data?.Contains("Press Ctrl+C", StringComparison.Ordinal) == true)
                ready.TrySetResult();
        };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (output)
                output.AppendLine(e.Data);
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromMinutes(3));
            string printed;
            lock (output)
                printed = output.ToString();
            var token = ClinicianToken().Match(printed).Groups[1].Value;
            var authority = CertificateAuthority().Match(printed).Groups[1].Value.Trim();
            Assert.NotEmpty(token);

            using var handler = LedgerCluster.TrustingHandler(authority);
            using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"https://127.0.0.1:{httpBase + 1}/fhir/Patient?_count=1"));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("Patient", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("entry")[0].GetProperty("resource").GetProperty("resourceType").GetString());

            using (var interrupt = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                await interrupt.WaitForExitAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            lock (output)
                Assert.Contains("All nodes stopped.", output.ToString(), StringComparison.Ordinal);
            Assert.Equal(0, process.ExitCode);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            lock (output)
                throw new InvalidOperationException(output.ToString(), e);
        }
        finally
        {
            if (!process.HasExited)
                process.Kill(entireProcessTree: true);
            Directory.Delete(root, recursive: true);
        }
    }

    [GeneratedRegex("export CLINICIAN='([^']+)'")]
    private static partial Regex ClinicianToken();

    [GeneratedRegex("clients trust it with --cacert (\\S+)")]
    private static partial Regex CertificateAuthority();
}
