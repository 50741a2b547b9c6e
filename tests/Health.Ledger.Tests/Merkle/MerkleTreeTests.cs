using Health.Ledger.Merkle;

namespace Health.Ledger.Tests.Merkle;

public sealed class MerkleTreeTests
{
    // The RFC 6962 / RFC 9162 reference leaves and roots (certificate-transparency test vectors).
    private static readonly string[] ReferenceLeaves =
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

    private static readonly string[] ReferenceRoots =
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    private static MerkleTree TreeOf(IEnumerable<byte[]> leaves)
    {
        var tree = new MerkleTree();
        foreach (var leaf in leaves)
            tree.AppendLeafHash(MerkleHash.Leaf(leaf));
        return tree;
    }

    private static MerkleTree ReferenceTree() => TreeOf(ReferenceLeaves.Select(Convert.FromHexString));

    private static MerkleTree SequentialTree(int size) => TreeOf(Enumerable.Range(0, size).Select(BitConverter.GetBytes));

    [Fact]
    public void Empty_tree_root_is_the_hash_of_nothing()
        => Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Convert.ToHexStringLower(new MerkleTree().Root(0)));

    [Fact]
    public void Roots_match_the_reference_vectors_for_every_prefix()
    {
        var tree = ReferenceTree();
        for (var size = 1; size <= ReferenceLeaves.Length; size++)
            Assert.Equal(ReferenceRoots[size - 1], Convert.ToHexStringLower(tree.Root(size)));
    }

    [Fact]
    public void Inclusion_proof_matches_the_reference_path()
    {
        // RFC 6962 reference: leaf 0 in the tree of 8.
        var proof = ReferenceTree().ProveInclusion(0, 8);
        Assert.Equal(
            ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
            proof.Path.Select(Convert.ToHexStringLower));
    }

    [Fact]
    public void Every_inclusion_proof_up_to_64_leaves_verifies()
    {
        var tree = SequentialTree(64);
        for (var size = 1; size <= 64; size++)
        {
            var root = tree.Root(size);
            for (var leaf = 0; leaf < size; leaf++)
                Assert.True(tree.ProveInclusion(leaf, size).Verify(tree.LeafHash(leaf), root), $"leaf {leaf} of {size}");
        }
    }

    [Fact]
    public void Every_consistency_proof_up_to_64_leaves_verifies()
    {
        var tree = SequentialTree(64);
        for (var second = 1; second <= 64; second++)
        {
            for (var first = 1; first <= second; first++)
                Assert.True(tree.ProveConsistency(first, second).Verify(tree.Root(first), tree.Root(second)), $"{first} -> {second}");
        }
    }

    [Fact]
    public void Any_flipped_bit_in_an_inclusion_proof_fails()
    {
        var tree = SequentialTree(64);
        foreach (var (leaf, size) in new[] { (0, 1), (5, 8), (12, 13), (37, 64), (63, 64), (20, 33) })
        {
            var proof = tree.ProveInclusion(leaf, size);
            var root = tree.Root(size);
            var leafHash = tree.LeafHash(leaf);
            for (var bit = 0; bit < MerkleHash.Size * 8; bit++)
            {
                Assert.False(proof.Verify(Flip(leafHash, bit), root));
                Assert.False(proof.Verify(leafHash, Flip(root, bit)));
                for (var step = 0; step < proof.Path.Count; step++)
                {
                    var tampered = proof with { Path = proof.Path.Select((p, i) => i == step ? Flip(p, bit) : p).ToList() };
                    Assert.False(tampered.Verify(leafHash, root));
                }
            }

            Assert.False((proof with { LeafIndex = (leaf + 1) % size }).Verify(leafHash, root) && size > 1);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(13)]
    [InlineData(64)]
    [InlineData(97)]
    public void A_run_of_proofs_in_leaf_order_accepts_each_valid_proof_and_refuses_each_tampered_one_between_them(int size)
    {
        var tree = SequentialTree(size);
        var root = tree.Root(size);
        var run = new InclusionProofRun(size, root);
        for (var leaf = 0; leaf < size; leaf++)
        {
            var proof = tree.ProveInclusion(leaf, size);
            var leafHash = tree.LeafHash(leaf);
            Assert.False(run.Verify(leaf, Flip(leafHash, leaf % 256), proof.Path));
            foreach (var bit in new[] { 0, 131, 255 })
            {
                for (var step = 0; step < proof.Path.Count; step++)
                    Assert.False(run.Verify(leaf, leafHash, proof.Path.Select((p, i) => i == step ? Flip(p, bit) : p).ToList()), $"leaf {leaf}, sibling {step}, bit {bit}");
            }

            if (proof.Path.Count > 0)
            {
                Assert.False(run.Verify(leaf, leafHash, proof.Path.Take(proof.Path.Count - 1).ToList()));
                Assert.False(run.Verify(leaf, leafHash, [.. proof.Path, proof.Path[^1]]));
            }

            if (size > 1)
                Assert.False(run.Verify((leaf + 1) % size, leafHash, proof.Path));
            Assert.True(run.Verify(leaf, leafHash, proof.Path), $"leaf {leaf} of {size}");
        }
    }

    [Fact]
    public void A_run_gives_each_proof_the_result_it_has_alone_in_any_order()
    {
        const int size = 50;
        var tree = SequentialTree(size);
        var root = tree.Root(size);
        var run = new InclusionProofRun(size, root);
        var random = new Random(20261204);
        for (var round = 0; round < 400; round++)
        {
            var leaf = random.Next(size);
            var proof = tree.ProveInclusion(leaf, size);
            if (random.Next(3) == 0 && proof.Path.Count > 0)
            {
                var (step, bit) = (random.Next(proof.Path.Count), random.Next(256));
                proof = proof with { Path = proof.Path.Select((p, i) => i == step ? Flip(p, bit) : p).ToList() };
            }

            Assert.Equal(proof.Verify(tree.LeafHash(leaf), root), run.Verify(leaf, tree.LeafHash(leaf), proof.Path));
        }

        Assert.False(new InclusionProofRun(size, Flip(root, 3)).Verify(0, tree.LeafHash(0), tree.ProveInclusion(0, size).Path));
    }

    [Fact]
    public void Any_flipped_bit_in_a_consistency_proof_fails()
    {
        var tree = SequentialTree(64);
        foreach (var (first, second) in new[] { (1, 2), (3, 8), (7, 13), (16, 64), (33, 63), (63, 64) })
        {
            var proof = tree.ProveConsistency(first, second);
            var firstRoot = tree.Root(first);
            var secondRoot = tree.Root(second);
            for (var bit = 0; bit < MerkleHash.Size * 8; bit++)
            {
                Assert.False(proof.Verify(Flip(firstRoot, bit), secondRoot));
                Assert.False(proof.Verify(firstRoot, Flip(secondRoot, bit)));
                for (var step = 0; step < proof.Path.Count; step++)
                {
                    var tampered = proof with { Path = proof.Path.Select((p, i) => i == step ? Flip(p, bit) : p).ToList() };
                    Assert.False(tampered.Verify(firstRoot, secondRoot));
                }
            }
        }
    }

    [Fact]
    public void Consistency_fails_when_history_was_rewritten()
    {
        var original = SequentialTree(20);
        var rewritten = TreeOf(Enumerable.Range(0, 20).Select(i => BitConverter.GetBytes(i == 3 ? -1 : i)));
        var proof = rewritten.ProveConsistency(10, 20);
        Assert.False(proof.Verify(original.Root(10), rewritten.Root(20)));
    }

    [Fact]
    public void Proofs_for_sizes_past_the_end_are_refused()
    {
        var tree = SequentialTree(5);
        Assert.Throws<ArgumentOutOfRangeException>(() => tree.ProveInclusion(5, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => tree.ProveInclusion(0, 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => tree.ProveConsistency(2, 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => tree.Root(6));
    }

    private static byte[] Flip(byte[] value, int bit)
    {
        var copy = (byte[])value.Clone();
        copy[bit / 8] ^= (byte)(1 << (bit % 8));
        return copy;
    }
}
