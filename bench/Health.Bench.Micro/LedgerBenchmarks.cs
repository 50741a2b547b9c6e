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
    private readonly List<byte[]> leaves = [];
    private MerkleTree bounded = null!;
    private int nextBlock;

    [GlobalSetup]
    public void Fill()
    {
        // The bounded tree reads old blocks' leaves from memory here; a node reads them from SQLite.
        bounded = new MerkleTree((start, count) => leaves.GetRange(checked((int)start), count));
        for (var i = 0; i < 1 << 20; i++)
        {
            var leaf = MerkleHash.Leaf(BitConverter.GetBytes(i));
            leaves.Add(leaf);
            tree.AppendLeafHash(leaf);
            bounded.AppendLeafHash(leaf);
        }
    }

    [Benchmark]
    public byte[] Canonical_bytes_and_leaf_hash() => MerkleHash.Leaf(entry.ToCanonicalBytes());

    [Benchmark]
    public InclusionProof Inclusion_proof_in_a_million_leaves() => tree.ProveInclusion(123_457, tree.Size);

    [Benchmark]
    public ConsistencyProof Consistency_proof_in_a_million_leaves() => tree.ProveConsistency(700_001, tree.Size);

    /// <summary>A node's tree, which holds only the upper levels: every call proves an entry in a block not among the four it keeps.</summary>
    [Benchmark]
    public InclusionProof Inclusion_proof_of_an_old_entry_bounded_tree()
    {
        nextBlock = (nextBlock + 1) % 8;
        return bounded.ProveInclusion((nextBlock * 100L + 3) << MerkleTree.BlockLevel, bounded.Size);
    }

    /// <summary>The same, in a block read just before (an export proving entries in order).</summary>
    [Benchmark]
    public InclusionProof Inclusion_proof_in_a_recent_block_bounded_tree() => bounded.ProveInclusion(123_457, bounded.Size);
}
