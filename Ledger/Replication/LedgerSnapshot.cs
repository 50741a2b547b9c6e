using System.Security.Cryptography;

namespace Health.Ledger.Replication;

/// <summary>A snapshot file: a copy of the projection at Raft index <see cref="Index"/>.</summary>
internal sealed class LedgerSnapshot(FileInfo file, long index, long term)
{
    private byte[]? sha256;

    /// <summary>The snapshot file.</summary>
    public FileInfo File => file;

    /// <summary>Raft index of the last entry the snapshot holds.</summary>
    public long Index => index;

    /// <summary>Term of that entry.</summary>
    public long Term => term;

    /// <summary>The file's SHA-256, read once (snapshot files never change once named).</summary>
    public byte[] Sha256()
    {
        if (Volatile.Read(ref sha256) is { } known)
            return known;
        using var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.SequentialScan);
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
