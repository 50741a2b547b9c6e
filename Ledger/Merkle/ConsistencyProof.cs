namespace Health.Ledger.Merkle;

/// <summary>An RFC 9162 consistency proof: the tree of <see cref="SecondSize"/> extends the tree of <see cref="FirstSize"/>.</summary>
/// <param name="FirstSize">The older tree size.</param>
/// <param name="SecondSize">The newer tree size.</param>
/// <param name="Path">The proof hashes.</param>
public sealed record ConsistencyProof(long FirstSize, long SecondSize, IReadOnlyList<byte[]> Path)
{
    /// <summary>
    /// Checks the proof as RFC 9162 section 2.1.4.2 describes: true only when both roots follow
    /// from the path, that is, the log only grew between the two sizes.
    /// </summary>
    public bool Verify(ReadOnlySpan<byte> firstRoot, ReadOnlySpan<byte> secondRoot)
    {
        if (FirstSize < 1 || FirstSize > SecondSize || Path.Any(static p => p.Length != MerkleHash.Size))
            return false;
        if (FirstSize == SecondSize)
            return Path.Count == 0 && firstRoot.SequenceEqual(secondRoot);
        if (Path.Count == 0)
            return false;

        var path = (FirstSize & (FirstSize - 1)) == 0 ? [firstRoot.ToArray(), .. Path] : Path;
        var fn = FirstSize - 1;
        var sn = SecondSize - 1;
        while ((fn & 1) == 1)
        {
            fn >>= 1;
            sn >>= 1;
        }

        var fr = path[0];
        var sr = path[0];
        foreach (var c in path.Skip(1))
        {
            if (sn == 0)
                return false;
            if ((fn & 1) == 1 || fn == sn)
            {
                fr = MerkleHash.Node(c, fr);
                sr = MerkleHash.Node(c, sr);
                while ((fn & 1) == 0 && fn != 0)
                {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
            else
            {
                sr = MerkleHash.Node(sr, c);
            }

            fn >>= 1;
            sn >>= 1;
        }

        return sn == 0 && fr.AsSpan().SequenceEqual(firstRoot) && sr.AsSpan().SequenceEqual(secondRoot);
    }
}
