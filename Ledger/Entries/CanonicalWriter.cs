using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Health.Ledger.Entries;

/// <summary>
/// Writes the one canonical byte form used for every ledger structure: big-endian integers,
/// length-prefixed UTF-8 strings, fields sorted by ordinal name. Every node produces the same
/// bytes for the same value, so every node computes the same hashes.
/// </summary>
/// <remarks>Every node encodes every entry it applies, so strings are encoded straight into the buffer.</remarks>
internal sealed class CanonicalWriter(int initialCapacity = 256)
{
    private readonly ArrayBufferWriter<byte> buffer = new(initialCapacity);

    public void WriteByte(byte value)
    {
        buffer.GetSpan(1)[0] = value;
        buffer.Advance(1);
    }

    public void WriteInt64(long value)
    {
        BinaryPrimitives.WriteInt64BigEndian(buffer.GetSpan(sizeof(long)), value);
        buffer.Advance(sizeof(long));
    }

    public void WriteUInt16(int value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(buffer.GetSpan(sizeof(ushort)), checked((ushort)value));
        buffer.Advance(sizeof(ushort));
    }

    public void WriteUInt32(int value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(buffer.GetSpan(sizeof(uint)), checked((uint)value));
        buffer.Advance(sizeof(uint));
    }

    public void WriteBytes(ReadOnlySpan<byte> bytes) => buffer.Write(bytes);

    public void WriteShortString(string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        WriteUInt16(length);
        WriteUtf8(value, length);
    }

    public void WriteLongString(string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        WriteUInt32(length);
        WriteUtf8(value, length);
    }

    public void WriteFields(IReadOnlyDictionary<string, string> fields)
    {
        WriteUInt16(fields.Count);
        if (fields is SortedDictionary<string, string> sorted && sorted.Comparer == StringComparer.Ordinal)
        {
            // Fields read back from canonical bytes are already in canonical order.
            foreach (var (name, value) in sorted)
                WriteField(name, value);
            return;
        }

        var names = new string[fields.Count];
        var i = 0;
        foreach (var name in fields.Keys)
            names[i++] = name;
        Array.Sort(names, StringComparer.Ordinal);
        foreach (var name in names)
            WriteField(name, fields[name]);
    }

    public byte[] ToArray() => buffer.WrittenSpan.ToArray();

    private void WriteField(string name, string value)
    {
        WriteShortString(name);
        WriteLongString(value);
    }

    private void WriteUtf8(string value, int length)
    {
        Encoding.UTF8.GetBytes(value, buffer.GetSpan(length));
        buffer.Advance(length);
    }
}
