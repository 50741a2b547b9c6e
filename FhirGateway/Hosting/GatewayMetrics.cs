using System.Diagnostics.Metrics;

namespace Health.FhirGateway.Hosting;

/// <summary>The gateway's metrics (meter <c>Health.Gateway</c>): access decisions and ingested resources.</summary>
public sealed class GatewayMetrics : IDisposable
{
    /// <summary>The meter's name, for exporters.</summary>
    public const string MeterName = "Health.Gateway";

    private readonly Meter meter = new(MeterName);
    private readonly Counter<long> decisions;
    private readonly Counter<long> ingested;

    /// <summary>Creates the instruments.</summary>
    public GatewayMetrics()
    {
        decisions = meter.CreateCounter<long>("health.access.decisions", description: "Access requests decided on the ledger, by outcome and break-glass");
        ingested = meter.CreateCounter<long>("health.ingest.resources", description: "Resources stored by transaction and batch ingest");
    }

    /// <summary>Counts one access decision.</summary>
    public void RecordDecision(bool permitted, bool breakGlass)
        => decisions.Add(1, new KeyValuePair<string, object?>("outcome", permitted ? "permit" : "deny"), new KeyValuePair<string, object?>("break_glass", breakGlass));

    /// <summary>Counts ingested resources.</summary>
    public void RecordIngest(int resources) => ingested.Add(resources);

    /// <inheritdoc/>
    public void Dispose() => meter.Dispose();
}
