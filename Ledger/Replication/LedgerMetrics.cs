using System.Diagnostics.Metrics;

namespace Health.Ledger.Replication;

/// <summary>
/// The ledger's metrics (meter <c>Health.Ledger</c>): commit and apply index, apply lag, tree size,
/// append latency, and entries covered by each checkpoint.
/// </summary>
internal sealed class LedgerMetrics : IDisposable
{
    /// <summary>The meter's name, for exporters.</summary>
    public const string MeterName = "Health.Ledger";

    private readonly Meter meter = new(MeterName);
    private readonly Histogram<double> appendLatency;
    private readonly Histogram<long> entriesPerCheckpoint;

    public LedgerMetrics(Func<(long Commit, long Applied, long TreeSize)> indices)
    {
        meter.CreateObservableGauge("health.ledger.commit_index", () => indices().Commit, description: "Raft commit index");
        meter.CreateObservableGauge("health.ledger.applied_index", () => indices().Applied, description: "Raft index applied to the projection");
        meter.CreateObservableGauge("health.ledger.apply_lag", () => indices().Commit - indices().Applied, description: "Committed Raft entries not yet applied here");
        meter.CreateObservableGauge("health.ledger.tree_size", () => indices().TreeSize, description: "Ledger entries applied");
        appendLatency = meter.CreateHistogram<double>("health.ledger.append.duration", "s", "Time from an append to its durable, applied commit");
        entriesPerCheckpoint = meter.CreateHistogram<long>("health.ledger.checkpoint.entries", description: "Entries a checkpoint covers beyond the previous one");
    }

    public void RecordAppend(TimeSpan elapsed) => appendLatency.Record(elapsed.TotalSeconds);

    public void RecordCheckpoint(long entries) => entriesPerCheckpoint.Record(entries);

    public void Dispose() => meter.Dispose();
}
