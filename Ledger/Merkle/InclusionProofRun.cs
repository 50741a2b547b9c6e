namespace Health.Ledger.Merkle;

/// <summary>
/// Verifies inclusion proofs into one tree, each with the result <see cref="InclusionProof.Verify"/>
/// gives, hashing only up to where a proof joins the last valid one: from a step where both stand
/// at the same node with the same hash and have the same siblings left, the rest of the climb is
/// the one already done. Neighbouring leaves share all but their lowest nodes, so proofs taken in
/// leaf order cost about two node hashes each instead of one per level.
/// </summary>
/// <param name="treeSize">Size of the tree every proof is for.</param>
/// <param name="root">The tree's root.</param>
public sealed class InclusionProofRun(long treeSize, byte[] root)
{
    private (long Fn, long Sn, byte[] Hash)[] lastSteps = [];
    private IReadOnlyList<byte[]> lastPath = [];

    /// <summary>Whether <paramref name="path"/> proves the leaf at <paramref name="leafIndex"/> (0-based) with hash <paramref name="leafHash"/>.</summary>
    public bool Verify(long leafIndex, ReadOnlySpan<byte> leafHash, IReadOnlyList<byte[]> path)
    {
        if (!InclusionProof.Starts(leafIndex, treeSize, leafHash))
            return false;
        var climb = new InclusionProof.Climb(leafIndex, treeSize, leafHash);
        var steps = new (long Fn, long Sn, byte[] Hash)[path.Count];
        for (var i = 0; i < path.Count; i++)
        {
            if (!climb.Step(path[i]))
                return false;
            steps[i] = (climb.Fn, climb.Sn, climb.Hash);
            if (JoinsLast(steps[i], i, path))
            {
                Array.Copy(lastSteps, i + 1, steps, i + 1, path.Count - i - 1);
                Remember(steps, path);
                return true;
            }
        }

        if (!climb.Reaches(root))
            return false;
        Remember(steps, path);
        return true;
    }

    private bool JoinsLast((long Fn, long Sn, byte[] Hash) step, int i, IReadOnlyList<byte[]> path)
    {
        if (lastPath.Count != path.Count || lastSteps[i].Fn != step.Fn || lastSteps[i].Sn != step.Sn || !lastSteps[i].Hash.AsSpan().SequenceEqual(step.Hash))
            return false;
        for (var rest = i + 1; rest < path.Count; rest++)
        {
            if (!lastPath[rest].AsSpan().SequenceEqual(path[rest]))
                return false;
        }

        return true;
    }

    private void Remember((long Fn, long Sn, byte[] Hash)[] steps, IReadOnlyList<byte[]> path)
    {
        lastSteps = steps;
        lastPath = path;
    }
}
