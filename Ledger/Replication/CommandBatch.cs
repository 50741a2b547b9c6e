using System.Buffers.Binary;
using Health.Ledger.Entries;

namespace Health.Ledger.Replication;

/// <summary>
/// The payload of one Raft log entry: a group of commands proposed together (group commit), with an
/// id that makes re-proposals idempotent and a timestamp the leader stamps just before replicating.
/// </summary>
/// <param name="Id">Unique id; a batch applied once is skipped if it appears again in the log.</param>
/// <param name="Timestamp">Leader's clock in Unix milliseconds; 0 until stamped.</param>
/// <param name="Commands">The commands, in order.</param>
internal sealed record CommandBatch(Guid Id, long Timestamp, IReadOnlyList<LedgerCommand> Commands)
{
    private const byte FormatVersion = 1;
    private const int TimestampOffset = 1 + 16;

    public byte[] Encode()
    {
        using var writer = new CanonicalWriter(64 + (Commands.Count * 512));
        writer.WriteByte(FormatVersion);
        writer.WriteBytes(Id.ToByteArray(bigEndian: true));
        writer.WriteInt64(Timestamp);
        writer.WriteUInt32(Commands.Count);
        foreach (var command in Commands)
            command.WriteTo(writer);
        return writer.ToArray();
    }

    /// <exception cref="FormatException">The bytes are not an encoded batch.</exception>
    public static CommandBatch Decode(ReadOnlySpan<byte> bytes)
    {
        var reader = new CanonicalReader(bytes);
        if (reader.ReadByte() != FormatVersion)
            throw new FormatException("Unknown batch format.");
        var id = new Guid(reader.ReadBytes(16), bigEndian: true);
        var timestamp = reader.ReadInt64();
        var count = reader.ReadUInt32();
        var commands = new List<LedgerCommand>(Math.Min(count, 4096));
        for (var i = 0; i < count; i++)
            commands.Add(LedgerCommand.ReadFrom(ref reader));
        if (!reader.AtEnd)
            throw new FormatException("Trailing bytes after batch.");
        return new CommandBatch(id, timestamp, commands);
    }

    /// <summary>Reads the id of an encoded batch without decoding the commands.</summary>
    public static Guid PeekId(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < TimestampOffset + sizeof(long) || bytes[0] != FormatVersion)
            throw new FormatException("Not an encoded batch.");
        return new Guid(bytes.Slice(1, 16), bigEndian: true);
    }

    /// <summary>Writes the leader's timestamp into an encoded batch.</summary>
    public static void Stamp(Span<byte> encoded, long timestamp)
    {
        PeekId(encoded);
        BinaryPrimitives.WriteInt64BigEndian(encoded.Slice(TimestampOffset, sizeof(long)), timestamp);
    }
}
