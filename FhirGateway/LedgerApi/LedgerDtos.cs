using Health.Ledger.Checkpoints;
using Health.Ledger.Entries;

namespace Health.FhirGateway.LedgerApi;

/// <summary>Answer to an append.</summary>
/// <param name="Index">The entry's ledger index.</param>
/// <param name="LeafHash">Its hex leaf hash.</param>
public sealed record AppendedDto(long Index, string LeafHash);

/// <summary>An entry as JSON; <paramref name="Canonical"/> is the hashed form.</summary>
/// <param name="Index">Ledger index.</param>
/// <param name="Timestamp">Leader-assigned Unix milliseconds.</param>
/// <param name="Kind">Entry kind.</param>
/// <param name="Fields">Field values.</param>
/// <param name="PreviousHash">Hex leaf hash of the predecessor.</param>
/// <param name="LeafHash">Hex leaf hash of this entry.</param>
/// <param name="Canonical">Base64 canonical bytes.</param>
public sealed record EntryDto(long Index, long Timestamp, string Kind, IReadOnlyDictionary<string, string> Fields, string PreviousHash, string LeafHash, string Canonical)
{
    /// <summary>Converts an entry.</summary>
    public static EntryDto From(LedgerEntry entry)
    {
        var bytes = entry.ToCanonicalBytes();
        return new EntryDto(entry.Index, entry.Timestamp, entry.Kind, entry.Fields, Convert.ToHexStringLower(entry.PreviousHash),
            Convert.ToHexStringLower(Ledger.Merkle.MerkleHash.Leaf(bytes)), Convert.ToBase64String(bytes));
    }
}

/// <summary>A page of entries.</summary>
/// <param name="Entries">The entries, in index order.</param>
/// <param name="TreeSize">The ledger's size when read.</param>
public sealed record EntryPageDto(IReadOnlyList<EntryDto> Entries, long TreeSize);

/// <summary>A signed checkpoint as JSON.</summary>
/// <param name="Index">Ledger index of the checkpoint entry.</param>
/// <param name="TreeSize">Tree size it covers.</param>
/// <param name="Root">Hex root.</param>
/// <param name="Signer">Signing node.</param>
/// <param name="KeyId">Signing key id.</param>
/// <param name="Signature">Base64 signature.</param>
public sealed record CheckpointDto(long Index, long TreeSize, string Root, string Signer, string KeyId, string Signature)
{
    /// <summary>Converts a checkpoint.</summary>
    public static CheckpointDto From(long index, SignedCheckpoint checkpoint) => new(index, checkpoint.TreeSize,
        Convert.ToHexStringLower(checkpoint.Root), checkpoint.Signer, checkpoint.KeyId, Convert.ToBase64String(checkpoint.Signature));

    /// <summary>Back to the checkpoint.</summary>
    public SignedCheckpoint ToCheckpoint() => new(TreeSize, Convert.FromHexString(Root), Signer, KeyId, Convert.FromBase64String(Signature));
}

/// <summary>A receipt as JSON.</summary>
/// <param name="Entry">Base64 canonical entry bytes.</param>
/// <param name="LeafIndex">0-based leaf position.</param>
/// <param name="Path">Hex inclusion path.</param>
/// <param name="Checkpoint">The covering checkpoint (its <c>Index</c> is 0 here: a receipt needs only the signed content).</param>
public sealed record ReceiptDto(string Entry, long LeafIndex, IReadOnlyList<string> Path, CheckpointDto Checkpoint)
{
    /// <summary>Converts a receipt.</summary>
    public static ReceiptDto From(Receipt receipt) => new(Convert.ToBase64String(receipt.EntryBytes), receipt.Proof.LeafIndex,
        receipt.Proof.Path.Select(Convert.ToHexStringLower).ToList(), CheckpointDto.From(0, receipt.Checkpoint));

    /// <summary>Back to the receipt.</summary>
    public Receipt ToReceipt() => new(Convert.FromBase64String(Entry),
        new Ledger.Merkle.InclusionProof(LeafIndex, Checkpoint.TreeSize, Path.Select(Convert.FromHexString).ToList()), Checkpoint.ToCheckpoint());
}

/// <summary>A consistency proof as JSON.</summary>
/// <param name="FirstSize">Older size.</param>
/// <param name="SecondSize">Newer size.</param>
/// <param name="FirstRoot">Hex root at the older size.</param>
/// <param name="SecondRoot">Hex root at the newer size.</param>
/// <param name="Path">Hex proof hashes.</param>
public sealed record ConsistencyDto(long FirstSize, long SecondSize, string FirstRoot, string SecondRoot, IReadOnlyList<string> Path);

/// <summary>A voting member to add.</summary>
/// <param name="NodeId">Its id.</param>
/// <param name="RaftEndPoint">Its Raft address, ip:port.</param>
/// <param name="HttpUrl">Its HTTP base URL.</param>
public sealed record MemberDto(string NodeId, string RaftEndPoint, string HttpUrl);
