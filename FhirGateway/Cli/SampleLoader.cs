using System.Net.Http.Headers;
using Spectre.Console;

namespace Health.FhirGateway.Cli;

/// <summary>
/// Spreads a folder of FHIR transaction Bundles over the demo's nodes, with a progress bar:
/// organisations and practitioners go to every node; each patient to one custodian, and every
/// fourth patient to a second one as well, so some patients have records at two custodians.
/// </summary>
internal static class SampleLoader
{
    /// <summary>Where each bundle goes: the node indices.</summary>
    public static IReadOnlyList<(FileInfo File, int[] Nodes)> Plan(DirectoryInfo folder, int nodeCount)
    {
        var files = folder.EnumerateFiles("*.json").OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            throw new CommandLineFailure($"{folder.FullName} holds no .json bundles.");
        var everywhere = Enumerable.Range(0, nodeCount).ToArray();
        var shared = files.Where(IsShared).OrderBy(f => f.Name.StartsWith("hospitalInformation", StringComparison.Ordinal) ? 0 : 1).Select(f => (f, everywhere));
        var patients = files.Where(f => !IsShared(f)).Select((f, i) => (f, (i % 4 == 0 ? new[] { i % nodeCount, (i + 1) % nodeCount } : [i % nodeCount]).Distinct().ToArray()));
        return [.. shared, .. patients];
    }

    public static async Task<int> LoadAsync(IReadOnlyList<(FileInfo File, int[] Nodes)> plan, IReadOnlyList<Uri> fhirBases, string bearerToken, HttpMessageHandler handler, CancellationToken token)
    {
        using var client = new HttpClient(handler, disposeHandler: false) { Timeout = TimeSpan.FromMinutes(2) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearerToken);
        var posts = plan.Sum(p => p.Nodes.Length);
        var failures = 0;
        string? firstRefusal = null;
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask($"Loading {plan.Count} bundles onto {fhirBases.Count} nodes", maxValue: posts);
                foreach (var (file, nodes) in plan)
                {
                    foreach (var node in nodes)
                    {
                        using var content = new StreamContent(file.OpenRead());
                        content.Headers.ContentType = new MediaTypeHeaderValue("application/fhir+json");
                        using var response = await client.PostAsync(fhirBases[node], content, token).ConfigureAwait(false);
                        if (!response.IsSuccessStatusCode)
                        {
                            // Bundle files are named after their patients: the refusal names the node only.
                            failures++;
                            firstRefusal ??= $"to node {node + 1} ({fhirBases[node].Authority}): {await CliHttp.DescribeRefusalAsync(response, token).ConfigureAwait(false)}";
                        }

                        task.Increment(1);
                    }
                }
            }).ConfigureAwait(false);
        if (failures > 0)
            AnsiConsole.MarkupLine($"[red]{failures} of {posts} bundle posts were refused; the first {Markup.Escape(firstRefusal!)}[/]");
        return failures;
    }

    private static bool IsShared(FileInfo file)
        => file.Name.StartsWith("hospitalInformation", StringComparison.Ordinal) || file.Name.StartsWith("practitionerInformation", StringComparison.Ordinal);
}
