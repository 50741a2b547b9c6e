using System.Security.Cryptography;

namespace Health.Ledger.Merkle;

/// <summary>The RFC 9162 (RFC 6962) hashes: leaf = SHA-256(0x00 || d), node = SHA-256(0x01 || left || right).</summary>
public static class MerkleHash
{
    /// <summary>Size of every hash, in bytes.</summary>
    public const int Size = SHA256.HashSizeInBytes;

    /// <summary>The root of the empty tree: SHA-256 of nothing.</summary>
    public static byte[] Empty => SHA256.HashData(ReadOnlySpan<byte>.Empty);

    /// <summary>Hashes leaf data.</summary>
    public static byte[] Leaf(ReadOnlySpan<byte> data)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(data.Length + 1);
        try
        {
            buffer[0] = 0x00;
            data.CopyTo(buffer.AsSpan(1));
            return SHA256.HashData(buffer.AsSpan(0, data.Length + 1));
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Hashes two child hashes into their parent.</summary>
    public static byte[] Node(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        Span<byte> buffer = stackalloc byte[1 + (2 * Size)];
        buffer[0] = 0x01;
        left.CopyTo(buffer[1..]);
        right.CopyTo(buffer[(1 + Size)..]);
        return SHA256.HashData(buffer);
    }
}
