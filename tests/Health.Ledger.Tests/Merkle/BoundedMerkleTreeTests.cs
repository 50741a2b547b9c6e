using Health.Ledger.Merkle;

namespace Health.Ledger.Tests.Merkle;

/// <summary>A tree that reads old blocks' leaves back gives exactly what a tree holding every hash gives.</summary>
public sealed class BoundedMerkleTreeTests
{
    private const int Block = 1 << MerkleTree.BlockLevel;

    private static readonly List<byte[]> Leaves =
        [.. Enumerable.Range(0, 5 * Block + 37).Select(i => MerkleHash.Leaf(BitConverter.GetBytes(i)))];

    private static (MerkleTree Full, MerkleTree Bounded, List<(long Start, int Count)> Reads) Trees(int size)
    {
        var full = new MerkleTree();
        var reads = new List<(long, int)>();
        var bounded = new MerkleTree((start, count) =>
        {
            reads.Add((start, count));
            return Leaves.Skip(checked((int)start)).Take(count).ToList();
        });
        foreach (var leaf in Leaves.Take(size))
        {
            full.AppendLeafHash(leaf);
            bounded.AppendLeafHash(leaf);
        }

        return (full, bounded, reads);
    }

    [Theory]
    [InlineData(Block - 1)]
    [InlineData(Block)]
    [InlineData(2 * Block)]
    [InlineData(3 * Block + 1)]
    [InlineData(5 * Block + 37)]
    public void Roots_leaves_and_proofs_equal_those_of_a_tree_holding_every_hash(int size)
    {
        var (full, bounded, _) = Trees(size);
        var random = new Random(size);
        var sizes = Enumerable.Range(0, 60).Select(_ => random.NextInt64(1, size + 1)).Append(size).Append(1).ToList();
        foreach (var treeSize in sizes)
        {
            Assert.Equal(full.Root(treeSize), bounded.Root(treeSize));
            var leaf = random.NextInt64(0, treeSize);
            Assert.Equal(full.LeafHash(leaf), bounded.LeafHash(leaf));
            Assert.Equal(full.ProveInclusion(leaf, treeSize).Path, bounded.ProveInclusion(leaf, treeSize).Path);
            var first = random.NextInt64(1, treeSize + 1);
            Assert.Equal(full.ProveConsistency(first, treeSize).Path, bounded.ProveConsistency(first, treeSize).Path);
        }
    }

    [Fact]
    public void Appending_never_reads_leaves_back_and_a_sequential_export_reads_each_old_block_once()
    {
        var (_, bounded, reads) = Trees(5 * Block + 37);
        Assert.Empty(reads);

        for (long leaf = 0; leaf < 5 * Block + 37; leaf++)
            bounded.ProveInclusion(leaf, 5 * Block + 37);

        // Blocks 0-3 are read back; block 4 (the last complete one) and the partial one are held.
        Assert.Equal([(0L, Block), (Block, Block), (2L * Block, Block), (3L * Block, Block)], reads);
    }

    [Fact]
    public void A_store_that_returns_fewer_leaves_than_asked_is_reported()
    {
        var tree = new MerkleTree((_, count) => Leaves.Take(count - 1).ToList());
        foreach (var leaf in Leaves.Take(3 * Block))
            tree.AppendLeafHash(leaf);
        Assert.Throws<InvalidOperationException>(() => tree.LeafHash(0));
    }
}
