using System.Text.Json;

namespace Health.Cluster.Tests.Fhir;

/// <summary>The synthetic patients in ../shared/fhir/synthea-r4, read as plain JSON for expected values.</summary>
public static class SyntheaData
{
    public static string? Folder { get; } = FindFolder();

    public static IEnumerable<string> OrganizationAndPractitionerBundles
        => Directory.EnumerateFiles(Folder!, "*.json").Where(f => IsInfrastructure(f)).Order(StringComparer.Ordinal);

    public static IEnumerable<string> PatientBundles
        => Directory.EnumerateFiles(Folder!, "*.json").Where(f => !IsInfrastructure(f)).Order(StringComparer.Ordinal);

    public static IEnumerable<JsonElement> Resources(string bundleFile)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(bundleFile));
        return document.RootElement.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("resource").Clone()).ToList();
    }

    private static bool IsInfrastructure(string file)
        => Path.GetFileName(file).StartsWith("hospitalInformation", StringComparison.Ordinal)
           || Path.GetFileName(file).StartsWith("practitionerInformation", StringComparison.Ordinal);

    private static string? FindFolder()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "..", "shared", "fhir", "synthea-r4");
            if (File.Exists(Path.Combine(directory.FullName, "Health.sln")))
                return Directory.Exists(candidate) ? Path.GetFullPath(candidate) : null;
        }

        return null;
    }
}

/// <summary>A fact that is skipped, with the reason, where the shared Synthea folder is absent.</summary>
public sealed class SyntheaFactAttribute : FactAttribute
{
    public SyntheaFactAttribute()
    {
        if (SyntheaData.Folder is null)
            Skip = "../shared/fhir/synthea-r4 is not present beside the checkout";
    }
}

/// <summary>A theory that is skipped, with the reason, where the shared Synthea folder is absent.</summary>
public sealed class SyntheaTheoryAttribute : TheoryAttribute
{
    public SyntheaTheoryAttribute()
    {
        if (SyntheaData.Folder is null)
            Skip = "../shared/fhir/synthea-r4 is not present beside the checkout";
    }
}
