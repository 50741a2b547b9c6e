using System.Text.Json;
using System.Text.Json.Serialization;

namespace Health.Ledger.Replication;

/// <summary>
/// What a leader sends through Raft in place of a snapshot's bytes: the member to fetch the file
/// from, and its length and SHA-256 to check it by. Every Raft request must finish within a timeout
/// shorter than an election, and the projection of a ledger of millions of entries takes longer to
/// send than that, so the file itself travels over HTTP (<see cref="SnapshotTransfer"/>).
/// </summary>
/// <param name="SourceNodeId">The member that holds the file (the leader that sent the reference).</param>
/// <param name="SourceUrl">That member's HTTP address.</param>
/// <param name="Index">Raft index of the last entry the snapshot holds.</param>
/// <param name="Term">Term of that entry.</param>
/// <param name="Length">The file's length in bytes.</param>
/// <param name="Sha256">The file's SHA-256.</param>
internal sealed record SnapshotReference(string SourceNodeId, Uri SourceUrl, long Index, long Term, long Length, byte[] Sha256)
{
    // Distinct from a SQLite file's first bytes ("SQLite format 3"), which members that sent the
    // whole file through Raft put there.
    private static readonly byte[] Marker = "health-ledger-snapshot-reference/1\n"u8.ToArray();

    /// <summary>The longest encoded reference a member accepts.</summary>
    public const int MaxEncodedLength = 4096;

    /// <summary>The path, relative to the source's address, the file is served at.</summary>
    [JsonIgnore]
    public string FilePath => $"{SnapshotTransfer.PathPrefix}{Index}-{Term}";

    /// <summary>Whether two references name the same file.</summary>
    public bool SameFileAs(SnapshotReference other)
        => SourceNodeId == other.SourceNodeId && Index == other.Index && Term == other.Term && Length == other.Length && Sha256.AsSpan().SequenceEqual(other.Sha256);

    /// <summary>The bytes sent through Raft.</summary>
    public byte[] Encode()
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(this);
        return [.. Marker, .. body];
    }

    /// <summary>Reads a reference, or returns null when <paramref name="bytes"/> are not one (a whole snapshot file).</summary>
    /// <exception cref="FormatException">The bytes start like a reference but are not a valid one.</exception>
    public static SnapshotReference? TryDecode(ReadOnlySpan<byte> bytes)
    {
        if (!bytes.StartsWith(Marker))
            return null;
        try
        {
            var reference = JsonSerializer.Deserialize<SnapshotReference>(bytes[Marker.Length..]);
            if (reference is null || reference.Sha256 is not { Length: 32 } || reference.Length < 0 || !reference.SourceUrl.IsAbsoluteUri)
                throw new FormatException("The snapshot reference is incomplete.");
            return reference;
        }
        catch (JsonException e)
        {
            throw new FormatException("The snapshot reference is not valid JSON.", e);
        }
    }
}
