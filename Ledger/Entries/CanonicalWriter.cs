using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Health.Ledger.Entries;

/// <summary>
/// Writes the one canonical byte form used for every ledger structure: big-endian integers,
/// length-prefixed UTF-8 strings, fields sorted by ordinal name. Every node produces the same
/// bytes for the same value, so every node computes the same hashes.
/// </summary>
/// <remarks>
/// Every node encodes every entry it applies, and the leader every batch it proposes: strings are
/// encoded straight into a buffer rented from the shared pool, and only the result is allocated
/// (a batch's scratch buffer would otherwise reach the large object heap, whose allocations start
/// full collections). Dispose returns the buffer.
/// </remarks>
internal sealed class CanonicalWriter(int initialCapacity = 256) : IDisposable
{
    private byte[] buffer = ArrayPool<byte>.Shared.Rent(initialCapacity);
    private int written;

    public void WriteByte(byte value)
    {
        GetSpan(1)[0] = value;
        written++;
    }

    public void WriteInt64(long value)
    {
        BinaryPrimitives.WriteInt64BigEndian(GetSpan(sizeof(long)), value);
        written += sizeof(long);
    }

    public void WriteUInt16(int value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(GetSpan(sizeof(ushort)), checked((ushort)value));
        written += sizeof(ushort);
    }

    public void WriteUInt32(int value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(GetSpan(sizeof(uint)), checked((uint)value));
        written += sizeof(uint);
    }

    public void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(GetSpan(bytes.Length));
        written += bytes.Length;
    }

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

    public byte[] ToArray() => buffer.AsSpan(0, written).ToArray();

    public void Dispose()
    {
        var rented = buffer;
        buffer = [];
        written = 0;
        if (rented.Length > 0)
            ArrayPool<byte>.Shared.Return(rented);
    }

    private void WriteField(string name, string value)
    {
        WriteShortString(name);
        WriteLongString(value);
    }

    private void WriteUtf8(string value, int length)
    {
        Encoding.UTF8.GetBytes(value, GetSpan(length));
        written += length;
    }

    private Span<byte> GetSpan(int length)
    {
        if (buffer.Length - written < length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(int.Max(checked(written + length), buffer.Length * 2));
            buffer.AsSpan(0, written).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = larger;
        }

        return buffer.AsSpan(written, length);
    }
}
