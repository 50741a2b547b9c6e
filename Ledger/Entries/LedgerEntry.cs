using System.Security.Cryptography;
using Health.Ledger.Merkle;

namespace Health.Ledger.Entries;

/// <summary>
/// One applied ledger entry. Its canonical bytes are the Merkle leaf data, and it carries the leaf
/// hash of its predecessor, so the entries form a hash chain as well as a Merkle tree.
/// </summary>
/// <param name="Index">1-based position in the ledger: entry <c>i</c> is leaf <c>i - 1</c>.</param>
/// <param name="Timestamp">Milliseconds since the Unix epoch, assigned by the Raft leader; never decreases.</param>
/// <param name="PreviousHash">Leaf hash of entry <c>Index - 1</c>; 32 zero bytes for the first entry.</param>
/// <param name="Kind">The entry kind.</param>
/// <param name="Fields">Field values by name.</param>
public sealed record LedgerEntry(long Index, long Timestamp, byte[] PreviousHash, string Kind, IReadOnlyDictionary<string, string> Fields)
{
    /// <summary>Version byte leading every canonical entry.</summary>
    public const byte FormatVersion = 1;

    /// <summary>The predecessor hash of the first entry.</summary>
    public static byte[] GenesisHash => new byte[SHA256.HashSizeInBytes];

    /// <summary>The one canonical serialization of this entry (the Merkle leaf data).</summary>
    public byte[] ToCanonicalBytes()
    {
        using var writer = new CanonicalWriter(512);
        writer.WriteByte(FormatVersion);
        writer.WriteInt64(Index);
        writer.WriteInt64(Timestamp);
        writer.WriteBytes(PreviousHash);
        writer.WriteShortString(Kind);
        writer.WriteFields(Fields);
        return writer.ToArray();
    }

    /// <summary>The RFC 9162 leaf hash of <see cref="ToCanonicalBytes"/>.</summary>
    public byte[] LeafHash() => MerkleHash.Leaf(ToCanonicalBytes());

    /// <summary>Parses canonical bytes.</summary>
    /// <exception cref="FormatException">The bytes are not a canonical entry.</exception>
    public static LedgerEntry FromCanonicalBytes(ReadOnlySpan<byte> bytes)
    {
        var reader = new CanonicalReader(bytes);
        if (reader.ReadByte() != FormatVersion)
            throw new FormatException("Unknown ledger entry format version.");
        var index = reader.ReadInt64();
        var timestamp = reader.ReadInt64();
        var previous = reader.ReadBytes(SHA256.HashSizeInBytes);
        var kind = reader.ReadShortString();
        var fields = reader.ReadFields();
        if (!reader.AtEnd)
            throw new FormatException("Trailing bytes after ledger entry.");
        return new LedgerEntry(index, timestamp, previous, kind, fields);
    }
}
