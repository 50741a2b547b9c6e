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
        if (LeafIndex < 0 || LeafIndex >= TreeSize || leafHash.Length != MerkleHash.Size)
            return false;
        var fn = LeafIndex;
        var sn = TreeSize - 1;
        var r = leafHash.ToArray();
        foreach (var p in Path)
        {
            if (sn == 0 || p.Length != MerkleHash.Size)
                return false;
            if ((fn & 1) == 1 || fn == sn)
            {
                r = MerkleHash.Node(p, r);
                while ((fn & 1) == 0 && fn != 0)
                {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
            else
            {
                r = MerkleHash.Node(r, p);
            }

            fn >>= 1;
            sn >>= 1;
        }

        return sn == 0 && r.AsSpan().SequenceEqual(root);
    }
}
