using System.Security.Cryptography;

namespace Health.Bench.Load;

/// <summary>
/// Ledger appends spread over several independent three-node Raft groups on the same machine, each
/// append going to the group its patient key hashes to: the multi-Raft layout of shared/DESIGN.md
/// ("Beyond one consortium group"), measured against one group before anyone claims it scales.
/// </summary>
internal sealed class ShardedAppends(IReadOnlyList<NodeCluster> groups) : INodeProcesses
{
    /// <summary>Distinct patient keys the appends are spread over.</summary>
    private const int PatientKeys = 10_000;

    /// <summary>Appends of ~300-byte notes naming a patient key, each to its group's leader.</summary>
    public async Task<LoadResult> RunAsync(int clients, int requests, TimeSpan limit, CancellationToken token)
    {
        var leaders = await Task.WhenAll(groups.Select(g => g.LeaderAsync(token))).ConfigureAwait(false);
        var bodies = new byte[PatientKeys][];
        var shards = new int[PatientKeys];
        for (var i = 0; i < PatientKeys; i++)
        {
            var patientKey = Convert.ToHexStringLower(SHA256.HashData(BitConverter.GetBytes(i)));
            shards[i] = (int)(BitConverter.ToUInt32(Convert.FromHexString(patientKey[..8])) % (uint)groups.Count);
            bodies[i] = Scenarios.NoteBody($"patient-key {patientKey}");
        }

        return await LoadRun.RunAsync($"appends over {groups.Count} Raft group{(groups.Count == 1 ? string.Empty : "s")}", this, clients, requests, limit,
            (sequence, ct) =>
            {
                var key = sequence % PatientKeys;
                return Scenarios.PostAppendAsync(groups[shards[key]].Client, leaders[shards[key]], bodies[key], ct);
            }, token).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public IReadOnlyList<double> CpuSeconds() => [.. groups.SelectMany(g => g.CpuSeconds())];

    /// <inheritdoc/>
    public IReadOnlyList<double> PeakMemoryMiB() => [.. groups.SelectMany(g => g.PeakMemoryMiB())];
}
