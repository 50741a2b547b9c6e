using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace Health.Ledger.Replication;

/// <summary>
/// The newest snapshot as DotNext sees it. What DotNext sends a follower too far behind is a
/// <see cref="SnapshotReference"/> to a copy of the projection on this member, not the copy itself.
/// A mark has no copy yet: the first send asks for one and fails, and DotNext's leader sends again
/// (every heartbeat) until the copy is there and this offer has been replaced by one with the file.
/// Each send is noted: while members keep asking, the state machine keeps this snapshot rather than
/// publish a newer mark (<see cref="IsInDemand"/>).
/// </summary>
internal sealed class SnapshotOffer : ISnapshot
{
    private readonly Lazy<byte[]> encoded;
    private readonly Action requestCopy;
    // Environment.TickCount64 at the first and the last send; 0 for none.
    private long firstAsked;
    private long lastAsked;

    public SnapshotOffer(LedgerSnapshot snapshot, string nodeId, Uri httpUrl, Action requestCopy)
    {
        Snapshot = snapshot;
        this.requestCopy = requestCopy;
        // Hashed when first sent: a node restarted with a large snapshot starts without reading it.
        encoded = new(() => new SnapshotReference(nodeId, httpUrl, snapshot.Index, snapshot.Term, snapshot.File!.Length, snapshot.Sha256()).Encode());
    }

    /// <summary>The snapshot: a mark, or a copy of the projection.</summary>
    public LedgerSnapshot Snapshot { get; }

    /// <inheritdoc/>
    public long Index => Snapshot.Index;

    /// <inheritdoc/>
    public long Term => Snapshot.Term;

    bool IDataTransferObject.IsReusable => true;

    long? IDataTransferObject.Length => Encoded().Length;

    /// <inheritdoc/>
    public ValueTask WriteToAsync<TWriter>(TWriter writer, CancellationToken token)
        where TWriter : IAsyncBinaryWriter
        => writer.Invoke(Encoded(), token);

    /// <summary>
    /// Whether a member asked for this snapshot's contents within the last <paramref name="window"/>,
    /// and first asked less than <paramref name="atMost"/> ago (a member that never finishes must not
    /// hold the log's compaction for ever).
    /// </summary>
    public bool IsInDemand(TimeSpan window, TimeSpan atMost)
    {
        var now = Environment.TickCount64;
        return Volatile.Read(ref lastAsked) is var last and not 0
            && now - last < (long)window.TotalMilliseconds
            && now - Volatile.Read(ref firstAsked) < (long)atMost.TotalMilliseconds;
    }

    private byte[] Encoded()
    {
        var now = Environment.TickCount64;
        Interlocked.CompareExchange(ref firstAsked, now, 0);
        Volatile.Write(ref lastAsked, now);
        if (Snapshot.File is not null)
            return encoded.Value;
        requestCopy();
        throw new SnapshotNotReadyException($"The snapshot at Raft index {Snapshot.Index} is being copied for a member that needs it; it is sent once the copy is written.");
    }
}
