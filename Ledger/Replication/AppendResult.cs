namespace Health.Ledger.Replication;

/// <summary>Where an appended command landed.</summary>
/// <param name="Index">Its 1-based ledger index.</param>
/// <param name="LeafHash">Its Merkle leaf hash.</param>
public sealed record AppendResult(long Index, byte[] LeafHash);
