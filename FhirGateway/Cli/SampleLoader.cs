using System.Net.Http.Headers;
using Spectre.Console;

namespace Health.FhirGateway.Cli;

/// <summary>Posts a folder of FHIR transaction Bundles to a node, organisations and practitioners first, with a progress bar.</summary>
internal static class SampleLoader
{
    public static async Task<int> LoadAsync(DirectoryInfo folder, Uri fhirBase, string bearerToken, CancellationToken token)
    {
        var files = folder.EnumerateFiles("*.json")
            .OrderBy(f => f.Name.StartsWith("hospitalInformation", StringComparison.Ordinal) ? 0 : f.Name.StartsWith("practitionerInformation", StringComparison.Ordinal) ? 1 : 2)
            .ThenBy(f => f.Name, StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0)
            throw new CommandLineFailure($"{folder.FullName} holds no .json bundles.");

        using var client = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearerToken);
        var failures = 0;
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask($"Loading {files.Count} bundles", maxValue: files.Count);
                foreach (var file in files)
                {
                    using var content = new StreamContent(file.OpenRead());
                    content.Headers.ContentType = new MediaTypeHeaderValue("application/fhir+json");
                    using var response = await client.PostAsync(fhirBase, content, token).ConfigureAwait(false);
                    if (!response.IsSuccessStatusCode)
                        failures++;
                    task.Increment(1);
                }
            }).ConfigureAwait(false);
        if (failures > 0)
            AnsiConsole.MarkupLine($"[red]{failures} of {files.Count} bundles were refused.[/]");
        return failures;
    }
}
