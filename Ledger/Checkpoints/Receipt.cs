using System.Security.Cryptography;
using Health.Ledger.Entries;
using Health.Ledger.Merkle;

namespace Health.Ledger.Checkpoints;

/// <summary>
/// Proof that an entry is in the ledger: the entry's canonical bytes, its inclusion proof in the
/// tree a checkpoint covers, and that signed checkpoint. Verifies offline with the signers' public keys.
/// </summary>
/// <param name="EntryBytes">The entry's canonical bytes.</param>
/// <param name="Proof">Inclusion of the entry's leaf in the tree of <c>Checkpoint.TreeSize</c>.</param>
/// <param name="Checkpoint">The signed checkpoint.</param>
public sealed record Receipt(byte[] EntryBytes, InclusionProof Proof, SignedCheckpoint Checkpoint)
{
    /// <summary>
    /// Checks the receipt: the bytes are a canonical entry, the proof is for that entry's leaf and the
    /// checkpoint's size, it leads to the checkpoint's root, and the checkpoint is signed by a trusted key.
    /// </summary>
    /// <param name="trustedKeys">Public keys by key id (hex SHA-256 of SubjectPublicKeyInfo).</param>
    /// <returns>Null when valid; otherwise why not.</returns>
    public string? Verify(IReadOnlyDictionary<string, ECDsa> trustedKeys)
    {
        LedgerEntry entry;
        try
        {
            entry = LedgerEntry.FromCanonicalBytes(EntryBytes);
        }
        catch (FormatException e)
        {
            return "entry bytes are not a canonical ledger entry: " + e.Message;
        }

        if (Proof.LeafIndex != entry.Index - 1)
            return "the proof is for another position than the entry's index";
        if (Proof.TreeSize != Checkpoint.TreeSize)
            return "the proof is for another tree size than the checkpoint's";
        if (!trustedKeys.TryGetValue(Checkpoint.KeyId, out var key))
            return "the checkpoint is signed by an unknown key";
        if (!Checkpoint.Verify(key))
            return "the checkpoint signature is invalid";
        return Proof.Verify(MerkleHash.Leaf(EntryBytes), Checkpoint.Root)
            ? null
            : "the inclusion proof does not lead to the checkpoint's root";
    }
}
