using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace Health.Ledger.Replication;

/// <summary>A snapshot file as DotNext sees it: the entry it sends to a follower too far behind.</summary>
internal sealed class LedgerSnapshot(FileInfo file, long index, long term) : ISnapshot
{
    private readonly long length = file.Length;

    /// <summary>The snapshot file: a copy of the projection at <see cref="Index"/>.</summary>
    public FileInfo File => file;

    /// <inheritdoc/>
    public long Index => index;

    /// <inheritdoc/>
    public long Term => term;

    bool IDataTransferObject.IsReusable => true;

    long? IDataTransferObject.Length => length;

    /// <inheritdoc/>
    public async ValueTask WriteToAsync<TWriter>(TWriter writer, CancellationToken token)
        where TWriter : IAsyncBinaryWriter
    {
        // Shared for deletion too: a newer snapshot may replace this one while it is being sent.
        var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using (stream.ConfigureAwait(false))
            await writer.CopyFromAsync(stream, count: null, token).ConfigureAwait(false);
    }
}
