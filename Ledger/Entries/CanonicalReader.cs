using System.Buffers.Binary;
using System.Text;

namespace Health.Ledger.Entries;

/// <summary>Reads what <see cref="CanonicalWriter"/> wrote; any deviation is a <see cref="FormatException"/>.</summary>
internal ref struct CanonicalReader(ReadOnlySpan<byte> data)
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly ReadOnlySpan<byte> data = data;
    private int position;

    public readonly bool AtEnd => position == data.Length;

    public byte ReadByte() => Take(1)[0];

    public long ReadInt64() => BinaryPrimitives.ReadInt64BigEndian(Take(sizeof(long)));

    public int ReadUInt16() => BinaryPrimitives.ReadUInt16BigEndian(Take(sizeof(ushort)));

    public int ReadUInt32()
    {
        var value = BinaryPrimitives.ReadUInt32BigEndian(Take(sizeof(uint)));
        return value > int.MaxValue ? throw new FormatException("Length out of range.") : (int)value;
    }

    public byte[] ReadBytes(int count) => Take(count).ToArray();

    public string ReadShortString() => Decode(Take(ReadUInt16()));

    public string ReadLongString() => Decode(Take(ReadUInt32()));

    public SortedDictionary<string, string> ReadFields()
    {
        var count = ReadUInt16();
        var fields = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string? previous = null;
        for (var i = 0; i < count; i++)
        {
            var name = ReadShortString();
            if (previous is not null && string.CompareOrdinal(previous, name) >= 0)
                throw new FormatException("Fields are not in canonical order.");
            fields[name] = ReadLongString();
            previous = name;
        }

        return fields;
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count < 0 || count > data.Length - position)
            throw new FormatException("Truncated canonical data.");
        var slice = data.Slice(position, count);
        position += count;
        return slice;
    }

    private static string Decode(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new FormatException("Invalid UTF-8 in canonical data.", e);
        }
    }
}
