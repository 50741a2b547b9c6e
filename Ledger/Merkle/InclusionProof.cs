namespace Health.Ledger.Merkle;

/// <summary>An RFC 9162 inclusion proof: the audit path of one leaf in a tree of a given size.</summary>
/// <param name="LeafIndex">0-based position of the leaf.</param>
/// <param name="TreeSize">Size of the tree the proof is for.</param>
/// <param name="Path">Sibling hashes from the leaf up to the root.</param>
public sealed record InclusionProof(long LeafIndex, long TreeSize, IReadOnlyList<byte[]> Path)
{
    /// <summary>
    /// Checks the proof as RFC 9162 section 2.1.3.2 describes: true only when the leaf hash, hashed
    /// up the path, gives <paramref name="root"/>.
    /// </summary>
    public bool Verify(ReadOnlySpan<byte> leafHash, ReadOnlySpan<byte> root)
    {
        if (!Starts(LeafIndex, TreeSize, leafHash))
            return false;
        var climb = new Climb(LeafIndex, TreeSize, leafHash);
        foreach (var p in Path)
        {
            if (!climb.Step(p))
                return false;
        }

        return climb.Reaches(root);
    }

    internal static bool Starts(long leafIndex, long treeSize, ReadOnlySpan<byte> leafHash)
        => leafIndex >= 0 && leafIndex < treeSize && leafHash.Length == MerkleHash.Size;

    /// <summary>The state of RFC 9162's verification loop: where the hash so far stands in the tree, and the hash.</summary>
    internal struct Climb(long leafIndex, long treeSize, ReadOnlySpan<byte> leafHash)
    {
        public long Fn = leafIndex;
        public long Sn = treeSize - 1;
        public byte[] Hash = leafHash.ToArray();

        /// <summary>Hashes in one sibling of the path; false when the path is longer than the tree allows or the sibling is no hash.</summary>
        public bool Step(byte[] sibling)
        {
            if (Sn == 0 || sibling.Length != MerkleHash.Size)
                return false;
            if ((Fn & 1) == 1 || Fn == Sn)
            {
                Hash = MerkleHash.Node(sibling, Hash);
                while ((Fn & 1) == 0 && Fn != 0)
                {
                    Fn >>= 1;
                    Sn >>= 1;
                }
            }
            else
            {
                Hash = MerkleHash.Node(Hash, sibling);
            }

            Fn >>= 1;
            Sn >>= 1;
            return true;
        }

        /// <summary>Whether the whole path has been climbed and the hash is <paramref name="root"/>.</summary>
        public readonly bool Reaches(ReadOnlySpan<byte> root) => Sn == 0 && Hash.AsSpan().SequenceEqual(root);
    }
}
