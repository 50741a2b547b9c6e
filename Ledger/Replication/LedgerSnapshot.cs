using System.Security.Cryptography;

namespace Health.Ledger.Replication;

/// <summary>
/// A snapshot at Raft index <see cref="Index"/>: the projection holds every entry up to it, on disk,
/// so the log may drop them. A mark has no file; a copy of the projection made for a member that
/// needs one (or fetched from the leader) has <see cref="File"/>, which holds the projection at
/// <see cref="Index"/> or later.
/// </summary>
internal sealed class LedgerSnapshot(FileInfo? file, long index, long term)
{
    private byte[]? sha256;

    /// <summary>The copy of the projection, or null for a mark.</summary>
    public FileInfo? File => file;

    /// <summary>Raft index of the last entry the snapshot covers.</summary>
    public long Index => index;

    /// <summary>Term of that entry.</summary>
    public long Term => term;

    /// <summary>The copy's SHA-256, read once (copies never change once named).</summary>
    public byte[] Sha256()
    {
        if (Volatile.Read(ref sha256) is { } known)
            return known;
        var copy = file ?? throw new InvalidOperationException($"The snapshot at Raft index {index} is a mark; it has no file to hash.");
        using var stream = new FileStream(copy.FullName, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.SequentialScan);
        Volatile.Write(ref sha256, SHA256.HashData(stream));
        return sha256!;
    }

    /// <summary>Records a hash checked elsewhere (a fetched file), so it is not read again.</summary>
    public LedgerSnapshot WithKnownSha256(byte[] hash)
    {
        Volatile.Write(ref sha256, hash);
        return this;
    }
}
