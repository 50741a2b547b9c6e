namespace Health.FhirGateway.Audit;

/// <summary>What a verification checked and every failure it found, each naming the file, line and reason.</summary>
public sealed class AuditReport
{
    private readonly List<string> failures = [];

    /// <summary>Entries checked into the tree.</summary>
    public long Entries { get; set; }

    /// <summary>AuditEvents that match their entries.</summary>
    public long Events { get; set; }

    /// <summary>Checkpoints whose signature verified.</summary>
    public int Checkpoints { get; set; }

    /// <summary>The failures, in the order found.</summary>
    public IReadOnlyList<string> Failures => failures;

    /// <summary>Whether nothing failed.</summary>
    public bool Passed => failures.Count == 0;

    /// <summary>Records a failure.</summary>
    public void Fail(string failure) => failures.Add(failure);
}
