using BenchmarkDotNet.Attributes;
using Health.Ledger.Entries;
using Health.Ledger.Merkle;

namespace Health.Bench.Micro;

/// <summary>Canonical serialization, hashing and Merkle proofs of ledger entries.</summary>
[MemoryDiagnoser]
public class LedgerBenchmarks
{
    private readonly LedgerEntry entry = new(42, 1_795_000_000_000, LedgerEntry.GenesisHash, "AccessRequested", new Dictionary<string, string>
    {
        ["requester"] = "Practitioner/8f1c2d", ["organization"] = "node2", ["patientKey"] = new string('a', 64),
        ["scope"] = "Observation", ["purpose"] = "TREAT",
    });

    private readonly MerkleTree tree = new();

    [GlobalSetup]
    public void Fill()
    {
        for (var i = 0; i < 1 << 20; i++)
            tree.AppendLeafHash(MerkleHash.Leaf(BitConverter.GetBytes(i)));
    }

    [Benchmark]
    public byte[] Canonical_bytes_and_leaf_hash() => MerkleHash.Leaf(entry.ToCanonicalBytes());

    [Benchmark]
    public InclusionProof Inclusion_proof_in_a_million_leaves() => tree.ProveInclusion(123_457, tree.Size);

    [Benchmark]
    public ConsistencyProof Consistency_proof_in_a_million_leaves() => tree.ProveConsistency(700_001, tree.Size);
}
