using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace Health.Ledger.Replication;

/// <summary>
/// The newest snapshot as DotNext sees it. What DotNext sends a follower too far behind is a
/// <see cref="SnapshotReference"/> to the file on this member, not the file itself.
/// </summary>
internal sealed class SnapshotOffer : ISnapshot
{
    private readonly Lazy<byte[]> encoded;

    public SnapshotOffer(LedgerSnapshot snapshot, string nodeId, Uri httpUrl)
    {
        Snapshot = snapshot;
        // Hashed when first sent: a node restarted with a large snapshot starts without reading it.
        encoded = new(() => new SnapshotReference(nodeId, httpUrl, snapshot.Index, snapshot.Term, snapshot.File.Length, snapshot.Sha256()).Encode());
    }

    /// <summary>The snapshot file.</summary>
    public LedgerSnapshot Snapshot { get; }

    /// <inheritdoc/>
    public long Index => Snapshot.Index;

    /// <inheritdoc/>
    public long Term => Snapshot.Term;

    bool IDataTransferObject.IsReusable => true;

    long? IDataTransferObject.Length => encoded.Value.Length;

    /// <inheritdoc/>
    public ValueTask WriteToAsync<TWriter>(TWriter writer, CancellationToken token)
        where TWriter : IAsyncBinaryWriter
        => writer.Invoke(encoded.Value, token);
}
