using System.Numerics;

namespace Health.Ledger.Merkle;

/// <summary>
/// An append-only Merkle tree as RFC 9162 defines it. Every complete, aligned subtree hash is kept
/// (level k holds the hashes of subtrees of 2^k leaves), so roots and proofs for any earlier tree
/// size take O(log² n) hashing. Safe for one writer and many readers.
/// </summary>
public sealed class MerkleTree
{
    private readonly List<HashList> levels = [new HashList()];
    private readonly Lock sync = new();

    /// <summary>Number of leaves.</summary>
    public long Size
    {
        get
        {
            lock (sync)
                return levels[0].Count;
        }
    }

    /// <summary>Appends a leaf hash (already computed with <see cref="MerkleHash.Leaf"/>).</summary>
    public void AppendLeafHash(ReadOnlySpan<byte> leafHash)
    {
        if (leafHash.Length != MerkleHash.Size)
            throw new ArgumentException("A leaf hash is 32 bytes.", nameof(leafHash));
        lock (sync)
        {
            levels[0].Add(leafHash);
            var index = levels[0].Count - 1;
            for (var level = 0; (index & 1) == 1; level++, index >>= 1)
            {
                if (levels.Count == level + 1)
                    levels.Add(new HashList());
                var parent = MerkleHash.Node(levels[level].Get(index - 1), levels[level].Get(index));
                levels[level + 1].Add(parent);
            }
        }
    }

    /// <summary>Removes every leaf.</summary>
    public void Clear()
    {
        lock (sync)
        {
            levels.Clear();
            levels.Add(new HashList());
        }
    }

    /// <summary>The leaf hash at a 0-based position.</summary>
    public byte[] LeafHash(long leafIndex)
    {
        lock (sync)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(leafIndex);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(leafIndex, levels[0].Count);
            return levels[0].Get(leafIndex).ToArray();
        }
    }

    /// <summary>The root of the tree made of the first <paramref name="treeSize"/> leaves.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The size is negative or larger than the tree.</exception>
    public byte[] Root(long treeSize)
    {
        lock (sync)
        {
            CheckSize(treeSize);
            return treeSize == 0 ? MerkleHash.Empty : SubtreeHash(0, treeSize);
        }
    }

    /// <summary>The RFC 9162 inclusion proof of a leaf in the tree of a given size.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The leaf is not inside the tree of that size.</exception>
    public InclusionProof ProveInclusion(long leafIndex, long treeSize)
    {
        lock (sync)
        {
            CheckSize(treeSize);
            ArgumentOutOfRangeException.ThrowIfNegative(leafIndex);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(leafIndex, treeSize);
            var path = new List<byte[]>();
            InclusionPath(leafIndex, 0, treeSize, path);
            return new InclusionProof(leafIndex, treeSize, path);
        }
    }

    /// <summary>The RFC 9162 consistency proof between two tree sizes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The sizes are not 0 &lt; first &lt;= second &lt;= size.</exception>
    public ConsistencyProof ProveConsistency(long firstSize, long secondSize)
    {
        lock (sync)
        {
            CheckSize(secondSize);
            ArgumentOutOfRangeException.ThrowIfLessThan(firstSize, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(firstSize, secondSize);
            var path = new List<byte[]>();
            if (firstSize < secondSize)
                SubProof(firstSize, 0, secondSize, complete: true, path);
            return new ConsistencyProof(firstSize, secondSize, path);
        }
    }

    private void CheckSize(long treeSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(treeSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(treeSize, levels[0].Count);
    }

    // Hash of leaves [start, start + count). Left parts of the RFC's recursion are always
    // complete aligned subtrees, so they come straight from a level.
    private byte[] SubtreeHash(long start, long count)
    {
        if (BitOperations.IsPow2(count) && start % count == 0)
            return levels[BitOperations.Log2((ulong)count)].Get(start / count).ToArray();
        var split = LargestPowerOfTwoBelow(count);
        return MerkleHash.Node(SubtreeHash(start, split), SubtreeHash(start + split, count - split));
    }

    private void InclusionPath(long leaf, long start, long count, List<byte[]> path)
    {
        if (count == 1)
            return;
        var split = LargestPowerOfTwoBelow(count);
        if (leaf < split)
        {
            InclusionPath(leaf, start, split, path);
            path.Add(SubtreeHash(start + split, count - split));
        }
        else
        {
            InclusionPath(leaf - split, start + split, count - split, path);
            path.Add(SubtreeHash(start, split));
        }
    }

    private void SubProof(long first, long start, long count, bool complete, List<byte[]> path)
    {
        if (first == count)
        {
            if (!complete)
                path.Add(SubtreeHash(start, count));
            return;
        }

        var split = LargestPowerOfTwoBelow(count);
        if (first <= split)
        {
            SubProof(first, start, split, complete, path);
            path.Add(SubtreeHash(start + split, count - split));
        }
        else
        {
            SubProof(first - split, start + split, count - split, complete: false, path);
            path.Add(SubtreeHash(start, split));
        }
    }

    internal static long LargestPowerOfTwoBelow(long n) => (long)BitOperations.RoundUpToPowerOf2((ulong)n) >> 1;

    private sealed class HashList
    {
        private byte[] data = new byte[MerkleHash.Size * 1024];

        public long Count { get; private set; }

        public void Add(ReadOnlySpan<byte> hash)
        {
            if ((Count + 1) * MerkleHash.Size > data.LongLength)
                Array.Resize(ref data, data.Length * 2);
            hash.CopyTo(data.AsSpan(checked((int)(Count * MerkleHash.Size))));
            Count++;
        }

        public ReadOnlySpan<byte> Get(long index) => data.AsSpan(checked((int)(index * MerkleHash.Size)), MerkleHash.Size);
    }
}
