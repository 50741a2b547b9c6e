using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using Health.Ledger.Merkle;
using Health.Ledger.Storage;
using Microsoft.Extensions.Logging;

namespace Health.Ledger.Replication;

/// <summary>
/// Fetches the snapshot file a <see cref="SnapshotReference"/> names from the member holding it, over
/// HTTP (mutual TLS when the node has a consortium identity), outside Raft's request timeout, and
/// prepares it for installation. One download runs at a time, in the background; the leader repeats
/// its install request until the snapshot is ready, and installing it then takes a few renames.
/// </summary>
/// <remarks>
/// Everything that grows with the ledger happens here, before the request that installs: a request
/// that outlives Raft's timeout loses its answer, and DotNext's leader then never learns that the
/// follower installed the snapshot (the follower rejects the same snapshot when it is sent again).
/// </remarks>
internal sealed partial class SnapshotTransfer : IDisposable
{
    /// <summary>Where members serve their snapshot files, followed by "{index}-{term}".</summary>
    public const string PathPrefix = "/internal/ledger/snapshots/";

    // A download that receives nothing for this long is abandoned and goes on from where it stopped on the leader's next request.
    private static readonly TimeSpan StallTimeout = TimeSpan.FromSeconds(30);

    private readonly string nodeId;
    private readonly Uri httpUrl;
    private readonly TimeSpan waitPerRequest;
    private readonly HttpClient client;
    private readonly DirectoryInfo directory;
    private readonly ILogger logger;
    private readonly Lock gate = new();
    private Download? current;
    private (SnapshotReference Reference, string File)? partial;

    /// <param name="self">This member: the references it sends name it as the source.</param>
    /// <param name="handler">Makes the HTTP connections to other members.</param>
    /// <param name="directory">The snapshot directory; downloads are written there under temporary names.</param>
    /// <param name="waitPerRequest">How long one install request waits for a download; the rest of Raft's request timeout is left for installing.</param>
    /// <param name="logger">Logging.</param>
    public SnapshotTransfer(LedgerMember self, HttpMessageHandler handler, DirectoryInfo directory, TimeSpan waitPerRequest, ILogger logger)
    {
        this.waitPerRequest = waitPerRequest;
        nodeId = self.NodeId;
        httpUrl = self.HttpUrl;
        client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        this.directory = directory;
        this.logger = logger;
    }

    /// <summary>How long one install request waits for a download, or for anything else before it installs.</summary>
    public TimeSpan WaitPerRequest => waitPerRequest;

    private sealed record Download(SnapshotReference Reference, Task<FetchedSnapshot> Ready, CancellationTokenSource Cancellation);

    /// <summary>What DotNext sends for <paramref name="snapshot"/>: a reference to its copy on this member, asked for with <paramref name="requestCopy"/> while there is none.</summary>
    public SnapshotOffer Offer(LedgerSnapshot snapshot, Action requestCopy) => new(snapshot, nodeId, httpUrl, requestCopy);

    /// <summary>
    /// The snapshot <paramref name="reference"/> names, fetched and prepared, once it is ready. The
    /// download (running, done, or started now in place of another file's or a failed one) goes on
    /// in the background; this call waits for it for a part of the request's time only.
    /// </summary>
    /// <exception cref="SnapshotNotReadyException">The download is still running; the leader asks again.</exception>
    public async Task<FetchedSnapshot> WaitForAsync(SnapshotReference reference, CancellationToken token)
    {
        var ready = Fetch(reference);
        try
        {
            return await ready.WaitAsync(waitPerRequest, token).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new SnapshotNotReadyException($"The snapshot at Raft index {reference.Index} is still being fetched from {reference.SourceNodeId}.");
        }
    }

    private Task<FetchedSnapshot> Fetch(SnapshotReference reference)
    {
        lock (gate)
        {
            if (current is { } running && running.Reference.SameFileAs(reference) && !running.Ready.IsFaulted && !running.Ready.IsCanceled)
                return running.Ready;
            Abandon();
            var cancellation = new CancellationTokenSource();
            LogFetching(logger, reference.Index, reference.SourceNodeId, reference.Length);
            var ready = Task.Run(() => DownloadAsync(reference, cancellation.Token));
            current = new Download(reference, ready, cancellation);
            return ready;
        }
    }

    /// <summary>
    /// Forgets the download of <paramref name="reference"/> once installing it was tried: its files
    /// have been moved into place, or whatever is left of them is deleted and the next request
    /// fetches the snapshot again.
    /// </summary>
    public void Release(SnapshotReference reference)
    {
        lock (gate)
        {
            if (current is { } done && done.Reference.SameFileAs(reference))
                Abandon();
        }
    }

    private void Abandon()
    {
        if (current is not { } old)
            return;
        old.Cancellation.Cancel();
        // A finished download nobody installed: its files go; a running one deletes its own.
        if (old.Ready.IsCompletedSuccessfully)
            old.Ready.Result.Delete();
        current = null;
    }

    private async Task<FetchedSnapshot> DownloadAsync(SnapshotReference reference, CancellationToken token)
    {
        var temporary = TakePartial(reference) ?? Path.Combine(directory.FullName, $"fetch-{Guid.NewGuid():N}{SnapshotDirectory.TemporarySuffix}");
        var projection = Path.ChangeExtension(temporary, null) + "-projection" + SnapshotDirectory.TemporarySuffix;
        var started = TimeProvider.System.GetTimestamp();
        var resumable = true;
        try
        {
            using var stall = CancellationTokenSource.CreateLinkedTokenSource(token);
            stall.CancelAfter(StallTimeout);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long received = File.Exists(temporary) ? new FileInfo(temporary).Length : 0;
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(reference.SourceUrl, reference.FilePath));
            if (received > 0)
                request.Headers.Range = new RangeHeaderValue(received, null);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, stall.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                resumable = received == 0;
                throw new IOException($"{reference.SourceNodeId} answered {(int)response.StatusCode} for snapshot {reference.Index}-{reference.Term}.");
            }

            // The rest of a file a stalled or broken download left, if the member serves that range;
            // otherwise the whole file again.
            if (received > 0 && response.StatusCode == HttpStatusCode.PartialContent && response.Content.Headers.ContentRange?.From == received)
            {
                LogResuming(logger, reference.Index, reference.SourceNodeId, received);
                await HashFileAsync(temporary, hash, stall.Token).ConfigureAwait(false);
            }
            else
            {
                received = 0;
            }

            var body = await response.Content.ReadAsStreamAsync(stall.Token).ConfigureAwait(false);
            var file = new FileStream(temporary, received > 0 ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
            await using (body.ConfigureAwait(false))
            await using (file.ConfigureAwait(false))
            {
                var buffer = new byte[1 << 16];
                int read;
                while ((read = await body.ReadAsync(buffer, stall.Token).ConfigureAwait(false)) > 0)
                {
                    stall.CancelAfter(StallTimeout);
                    received += read;
                    if (received > reference.Length)
                        break;
                    hash.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), stall.Token).ConfigureAwait(false);
                }
            }

            if (received < reference.Length)
                throw new IOException($"Snapshot {reference.Index}-{reference.Term} from {reference.SourceNodeId} ended after {received} of {reference.Length} bytes.");
            if (received > reference.Length || !hash.GetHashAndReset().AsSpan().SequenceEqual(reference.Sha256))
                throw new InvalidDataException($"Snapshot {reference.Index}-{reference.Term} from {reference.SourceNodeId} does not match its reference ({received} of {reference.Length} bytes).");

            // Both files are flushed here, in the background: installing then flushes nothing large
            // inside the leader's request.
            resumable = false;
            var tree = BuildTree(temporary, token);
            DiskFlush.File(temporary);
            File.Copy(temporary, projection, overwrite: true);
            DiskFlush.File(projection);
            LogFetched(logger, reference.Index, reference.SourceNodeId, reference.Length, (long)TimeProvider.System.GetElapsedTime(started).TotalMilliseconds);
            return new FetchedSnapshot(reference, temporary, projection, tree);
        }
        catch (Exception e)
        {
            // What a broken connection or a stall left is kept for the next attempt to continue; a
            // file that does not match, a whole file that could not be prepared, a range the member
            // refused, or a download given up, is not.
            File.Delete(projection);
            if (!resumable || e is InvalidDataException || token.IsCancellationRequested || !KeepPartial(reference, temporary))
                File.Delete(temporary);
            if (e is not OperationCanceledException || !token.IsCancellationRequested)
                LogFetchFailed(logger, reference.Index, reference.SourceNodeId, e.Message);
            throw;
        }
    }

    // The partial file of an earlier download of the same snapshot, now this download's; null if none.
    private string? TakePartial(SnapshotReference reference)
    {
        lock (gate)
        {
            var taken = partial is { } left && left.Reference.SameFileAs(reference) && File.Exists(left.File) ? left.File : null;
            if (partial is { } other && taken is null)
                File.Delete(other.File);
            partial = null;
            return taken;
        }
    }

    private bool KeepPartial(SnapshotReference reference, string file)
    {
        lock (gate)
        {
            if (current is not { } running || !running.Reference.SameFileAs(reference))
                return false;
            partial = (reference, file);
            return true;
        }
    }

    private static async Task HashFileAsync(string file, IncrementalHash hash, CancellationToken token)
    {
        var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.None, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using (stream.ConfigureAwait(false))
        {
            var buffer = new byte[1 << 16];
            int read;
            while ((read = await stream.ReadAsync(buffer, token).ConfigureAwait(false)) > 0)
                hash.AppendData(buffer, 0, read);
        }
    }

    // The tree over the snapshot's leaves, built here so that installing only swaps it in.
    private static MerkleTree BuildTree(string snapshot, CancellationToken token)
    {
        var tree = new MerkleTree(static (_, _) => throw new InvalidOperationException("A tree built from a snapshot is installed before it proves anything."));
        foreach (var leaf in LedgerStore.ReadLeafHashes(snapshot))
        {
            token.ThrowIfCancellationRequested();
            tree.AppendLeafHash(leaf);
        }

        return tree;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (gate)
            Abandon();
        client.Dispose();
    }

    [LoggerMessage(EventId = 1108, Level = LogLevel.Information, Message = "Fetching the snapshot at Raft index {RaftIndex} from {Source} ({Bytes} bytes); the leader's install requests are refused until it is here")]
    private static partial void LogFetching(ILogger logger, long raftIndex, string source, long bytes);

    [LoggerMessage(EventId = 1110, Level = LogLevel.Information, Message = "Fetching the snapshot at Raft index {RaftIndex} from {Source} goes on from byte {Offset}")]
    private static partial void LogResuming(ILogger logger, long raftIndex, string source, long offset);

    [LoggerMessage(EventId = 1106, Level = LogLevel.Information, Message = "Snapshot at Raft index {RaftIndex} fetched from {Source} and prepared: {Bytes} bytes in {Milliseconds} ms")]
    private static partial void LogFetched(ILogger logger, long raftIndex, string source, long bytes, long milliseconds);

    [LoggerMessage(EventId = 1107, Level = LogLevel.Warning, Message = "Fetching the snapshot at Raft index {RaftIndex} from {Source} failed ({Reason}); it is fetched again when the leader asks")]
    private static partial void LogFetchFailed(ILogger logger, long raftIndex, string source, string reason);
}

/// <summary>
/// A snapshot fetched from another member and checked: the file to keep as this node's snapshot, a
/// copy of it to become the projection, and the Merkle tree over its leaves.
/// </summary>
internal sealed record FetchedSnapshot(SnapshotReference Reference, string File, string Projection, MerkleTree Tree)
{
    /// <summary>Deletes the files of a snapshot that will not be installed.</summary>
    public void Delete()
    {
        System.IO.File.Delete(File);
        System.IO.File.Delete(Projection);
    }
}

/// <summary>The snapshot a leader referred to is still being fetched; the leader asks again.</summary>
internal sealed class SnapshotNotReadyException(string message) : IOException(message);
