namespace Health.Portal.Tests;

/// <summary>A browser test: skipped, with the reason, where Debian's chromium or chromedriver is absent (.ci/run installs both).</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public const string Browser = "/usr/bin/chromium";
    public const string Driver = "/usr/bin/chromedriver";

    public ChromiumFactAttribute()
    {
        if (!File.Exists(Browser) || !File.Exists(Driver))
            Skip = $"Needs {Browser} and {Driver} (Debian packages chromium and chromium-driver; .ci/run installs them).";
        else if (Health.Cluster.Tests.Fhir.SyntheaData.Folder is null)
            Skip = "Needs the Synthea sample patients in ../shared/fhir/synthea-r4.";
    }
}
