namespace Health.FhirGateway.Audit;

/// <summary>What a verification checked and every failure it found, each naming the file, line and reason.</summary>
public sealed class AuditReport
{
    private readonly List<string> failures = [];

    /// <summary>Entries checked into the tree.</summary>
    public long Entries { get; set; }

    /// <summary>AuditEvents that match their entries.</summary>
    public long Events => Interlocked.Read(ref events);

    private long events;

    /// <summary>Counts one event that matched; safe from several threads.</summary>
    public void CountEvent() => Interlocked.Increment(ref events);

    /// <summary>Checkpoints whose signature verified.</summary>
    public int Checkpoints { get; set; }

    /// <summary>The failures, in the order found.</summary>
    public IReadOnlyList<string> Failures
    {
        get
        {
            lock (failures)
                return [.. failures];
        }
    }

    /// <summary>Whether nothing failed.</summary>
    public bool Passed => Failures.Count == 0;

    /// <summary>Records a failure; safe from several threads.</summary>
    public void Fail(string failure)
    {
        lock (failures)
            failures.Add(failure);
    }
}
