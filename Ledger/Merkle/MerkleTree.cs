using System.Numerics;

namespace Health.Ledger.Merkle;

/// <summary>
/// An append-only Merkle tree as RFC 9162 defines it. Every complete, aligned subtree hash is
/// available (level k holds the hashes of subtrees of 2^k leaves), so roots and proofs for any
/// earlier tree size take O(log² n) hashing. Safe for one writer and many readers.
/// </summary>
/// <remarks>
/// Given a reader of the leaf hashes it no longer holds, the tree keeps in memory only the levels
/// from <see cref="BlockLevel"/> up (one hash per 1,024 leaves and above) plus the last complete
/// block and the one being filled; a lower hash elsewhere is recomputed from its block's leaves,
/// read once per block and kept for a few blocks. Memory then grows by 64 bytes per 1,024 leaves.
/// Without a reader, every hash is held.
/// </remarks>
public sealed class MerkleTree
{
    /// <summary>Levels below this one are held only for the newest blocks of 2^<see cref="BlockLevel"/> leaves.</summary>
    public const int BlockLevel = 10;

    private const int BlockLeaves = 1 << BlockLevel;
    private const int CachedBlocks = 4;

    private readonly Func<long, int, IReadOnlyList<byte[]>>? readLeaves;
    private readonly List<HashList> levels = [new HashList()];
    private readonly LinkedList<(long Block, byte[][] Levels)> recentBlocks = new();
    private readonly Lock sync = new();

    /// <summary>A tree that holds every hash in memory.</summary>
    public MerkleTree()
    {
    }

    /// <summary>A tree that holds only the upper levels and the newest blocks (see remarks).</summary>
    /// <param name="readLeaves">Reads the leaf hashes at 0-based positions [start, start + count), all of them appended before.</param>
    public MerkleTree(Func<long, int, IReadOnlyList<byte[]>> readLeaves) => this.readLeaves = readLeaves;

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

            if (readLeaves is not null && levels[0].Count % BlockLeaves == 0)
                ReleaseOlderBlocks();
        }
    }

    // Keeps the block just completed (its right edge still pairs with the next block's hashes
    // only through the levels above) and drops the lower hashes of every block before it.
    private void ReleaseOlderBlocks()
    {
        var keepFromLeaf = levels[0].Count - BlockLeaves;
        for (var level = 0; level < BlockLevel && level < levels.Count; level++)
            levels[level].DropBefore(keepFromLeaf >> level);
    }

    /// <summary>Removes every leaf.</summary>
    public void Clear()
    {
        lock (sync)
        {
            levels.Clear();
            levels.Add(new HashList());
            recentBlocks.Clear();
        }
    }

    /// <summary>
    /// Takes every hash of <paramref name="built"/>, a tree filled elsewhere (from a snapshot's
    /// leaves, before it is installed), in place of this tree's; <paramref name="built"/> must not be used again.
    /// </summary>
    public void ReplaceWith(MerkleTree built)
    {
        lock (sync)
        {
            levels.Clear();
            levels.AddRange(built.levels);
            recentBlocks.Clear();
        }
    }

    /// <summary>The leaf hash at a 0-based position.</summary>
    public byte[] LeafHash(long leafIndex)
    {
        lock (sync)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(leafIndex);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(leafIndex, levels[0].Count);
            return Node(0, leafIndex).ToArray();
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
            return Node(BitOperations.Log2((ulong)count), start / count).ToArray();
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

    // The hash of the index-th complete subtree of 2^level leaves.
    private ReadOnlySpan<byte> Node(int level, long index)
    {
        if (index >= levels[level].First)
            return levels[level].Get(index);
        var perBlock = BlockLeaves >> level;
        return BlockLevels(index / perBlock)[level].AsSpan(checked((int)(index % perBlock)) * MerkleHash.Size, MerkleHash.Size);
    }

    // Every level under BlockLevel of one complete block, from its leaves.
    private byte[][] BlockLevels(long block)
    {
        for (var node = recentBlocks.First; node is not null; node = node.Next)
        {
            if (node.Value.Block != block)
                continue;
            recentBlocks.Remove(node);
            recentBlocks.AddFirst(node);
            return node.Value.Levels;
        }

        var leaves = readLeaves!(block * BlockLeaves, BlockLeaves);
        if (leaves.Count != BlockLeaves || leaves.Any(l => l.Length != MerkleHash.Size))
            throw new InvalidOperationException($"The leaf store returned {leaves.Count} leaf hashes of block {block}, not {BlockLeaves}.");
        var hashes = new byte[BlockLevel][];
        hashes[0] = new byte[BlockLeaves * MerkleHash.Size];
        for (var i = 0; i < BlockLeaves; i++)
            leaves[i].CopyTo(hashes[0], i * MerkleHash.Size);
        for (var level = 1; level < BlockLevel; level++)
        {
            var below = hashes[level - 1];
            hashes[level] = new byte[below.Length / 2];
            for (var i = 0; i < hashes[level].Length / MerkleHash.Size; i++)
            {
                MerkleHash.Node(below.AsSpan(2 * i * MerkleHash.Size, MerkleHash.Size), below.AsSpan((2 * i + 1) * MerkleHash.Size, MerkleHash.Size))
                    .CopyTo(hashes[level], i * MerkleHash.Size);
            }
        }

        recentBlocks.AddFirst((block, hashes));
        if (recentBlocks.Count > CachedBlocks)
            recentBlocks.RemoveLast();
        return hashes;
    }

    internal static long LargestPowerOfTwoBelow(long n) => (long)BitOperations.RoundUpToPowerOf2((ulong)n) >> 1;

    // Hashes [First, Count) of one level, in one array; a level may drop the ones before a position.
    private sealed class HashList
    {
        private byte[] data = new byte[MerkleHash.Size * 1024];

        /// <summary>Position of the first hash held.</summary>
        public long First { get; private set; }

        /// <summary>Position the next hash takes: how many were ever added.</summary>
        public long Count { get; private set; }

        public void Add(ReadOnlySpan<byte> hash)
        {
            if ((Count - First + 1) * MerkleHash.Size > data.LongLength)
                Array.Resize(ref data, data.Length * 2);
            hash.CopyTo(data.AsSpan(Offset(Count)));
            Count++;
        }

        public ReadOnlySpan<byte> Get(long index) => data.AsSpan(Offset(index), MerkleHash.Size);

        public void DropBefore(long index)
        {
            if (index <= First)
                return;
            var kept = checked((int)((Count - index) * MerkleHash.Size));
            data.AsSpan(Offset(index), kept).CopyTo(data);
            First = index;
        }

        private int Offset(long index) => checked((int)((index - First) * MerkleHash.Size));
    }
}
