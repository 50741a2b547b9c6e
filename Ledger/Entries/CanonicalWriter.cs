using System.Buffers.Binary;
using System.Text;

namespace Health.Ledger.Entries;

/// <summary>
/// Writes the one canonical byte form used for every ledger structure: big-endian integers,
/// length-prefixed UTF-8 strings, fields sorted by ordinal name. Every node produces the same
/// bytes for the same value, so every node computes the same hashes.
/// </summary>
internal sealed class CanonicalWriter
{
    private readonly MemoryStream buffer = new();

    public void WriteByte(byte value) => buffer.WriteByte(value);

    public void WriteInt64(long value)
    {
        Span<byte> bytes = stackalloc byte[sizeof(long)];
        BinaryPrimitives.WriteInt64BigEndian(bytes, value);
        buffer.Write(bytes);
    }

    public void WriteUInt16(int value)
    {
        Span<byte> bytes = stackalloc byte[sizeof(ushort)];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, checked((ushort)value));
        buffer.Write(bytes);
    }

    public void WriteUInt32(int value)
    {
        Span<byte> bytes = stackalloc byte[sizeof(uint)];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, checked((uint)value));
        buffer.Write(bytes);
    }

    public void WriteBytes(ReadOnlySpan<byte> bytes) => buffer.Write(bytes);

    public void WriteShortString(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        WriteUInt16(bytes.Length);
        buffer.Write(bytes);
    }

    public void WriteLongString(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        WriteUInt32(bytes.Length);
        buffer.Write(bytes);
    }

    public void WriteFields(IReadOnlyDictionary<string, string> fields)
    {
        WriteUInt16(fields.Count);
        foreach (var (name, value) in fields.OrderBy(static f => f.Key, StringComparer.Ordinal))
        {
            WriteShortString(name);
            WriteLongString(value);
        }
    }

    public byte[] ToArray() => buffer.ToArray();
}
