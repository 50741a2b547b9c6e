using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Health.Ledger.Merkle;
using Health.Ledger.Replication;
using Health.Ledger.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Health.Ledger.Tests.Replication;

/// <summary>
/// A follower fetches the snapshot a leader refers to over HTTP, from a real loopback server here:
/// a download outlives the Raft requests that ask for it, and a file that does not match its
/// reference is never installed.
/// </summary>
public sealed class SnapshotTransferTests : IDisposable
{
    private const long SnapshotIndex = 7, SnapshotTerm = 3;
    private static readonly LedgerMember Follower = LedgerMember.Parse("node2=127.0.0.1:1=http://127.0.0.1:2/");

    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-transfer-");

    [Fact]
    public async Task A_download_goes_on_between_install_requests_and_is_ready_whole_on_a_later_one()
    {
        var (file, expectedRoot) = await WriteSourceSnapshotAsync(entries: 3_000);
        var bytes = await File.ReadAllBytesAsync(file);
        var halfSent = new TaskCompletionSource();
        var sendRest = new TaskCompletionSource();
        await using var server = SnapshotServer.Start(async (context, attempt) =>
        {
            var response = context.Response;
            await response.OutputStream.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
            await response.OutputStream.FlushAsync();
            halfSent.TrySetResult();
            await sendRest.Task;
            await response.OutputStream.WriteAsync(bytes.AsMemory(bytes.Length / 2));
        });
        using var transfer = NewTransfer(waitPerRequest: TimeSpan.FromMilliseconds(200));
        var reference = ReferenceTo(server, bytes);

        await Assert.ThrowsAsync<SnapshotNotReadyException>(() => transfer.WaitForAsync(reference, CancellationToken.None));
        await halfSent.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await Assert.ThrowsAsync<SnapshotNotReadyException>(() => transfer.WaitForAsync(reference, CancellationToken.None));
        sendRest.SetResult();
        var fetched = await WaitUntilReadyAsync(transfer, reference);

        Assert.Equal(1, server.Requests);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(fetched.File));
        Assert.Equal(bytes, await File.ReadAllBytesAsync(fetched.Projection));
        Assert.Equal(3_000, fetched.Tree.Size);
        Assert.Equal(expectedRoot, fetched.Tree.Root(3_000));
    }

    [Fact]
    public async Task A_file_that_does_not_match_its_reference_is_refused_and_fetched_again()
    {
        var (file, _) = await WriteSourceSnapshotAsync(entries: 200);
        var bytes = await File.ReadAllBytesAsync(file);
        await using var server = SnapshotServer.Start(async (context, attempt) =>
        {
            var sent = (byte[])bytes.Clone();
            if (attempt == 1)
                sent[sent.Length / 2] ^= 0xFF;
            await context.Response.OutputStream.WriteAsync(sent);
        });
        using var transfer = NewTransfer(waitPerRequest: TimeSpan.FromSeconds(30));
        var reference = ReferenceTo(server, bytes);

        await Assert.ThrowsAsync<InvalidDataException>(() => transfer.WaitForAsync(reference, CancellationToken.None));
        Assert.Empty(Directory.EnumerateFiles(root.FullName, "fetch-*", SearchOption.AllDirectories));

        var fetched = await transfer.WaitForAsync(reference, CancellationToken.None);
        Assert.Equal(2, server.Requests);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(fetched.File));
    }

    [Fact]
    public async Task A_download_broken_off_goes_on_from_where_it_stopped()
    {
        var (file, expectedRoot) = await WriteSourceSnapshotAsync(entries: 3_000);
        var bytes = await File.ReadAllBytesAsync(file);
        var half = bytes.Length / 2;
        string? secondRange = null;
        await using var server = SnapshotServer.Start(async (context, attempt) =>
        {
            var response = context.Response;
            if (attempt == 1)
            {
                // Half the file, then the connection breaks once the follower has written some of it.
                response.SendChunked = false;
                response.ContentLength64 = bytes.Length;
                await response.OutputStream.WriteAsync(bytes.AsMemory(0, half));
                await response.OutputStream.FlushAsync();
                await WaitUntilAsync(() => Directory.EnumerateFiles(root.FullName, "fetch-*", SearchOption.AllDirectories).Any(f => new FileInfo(f).Length > 0));
                response.Abort();
                return;
            }

            // As ASP.NET Core's file results answer a range request.
            secondRange = context.Request.Headers["Range"];
            var from = long.Parse(secondRange!["bytes=".Length..^1], System.Globalization.CultureInfo.InvariantCulture);
            response.StatusCode = 206;
            response.Headers["Content-Range"] = $"bytes {from}-{bytes.Length - 1}/{bytes.Length}";
            await response.OutputStream.WriteAsync(bytes.AsMemory((int)from));
        });
        using var transfer = NewTransfer(waitPerRequest: TimeSpan.FromSeconds(30));
        var reference = ReferenceTo(server, bytes);

        await Assert.ThrowsAnyAsync<Exception>(() => transfer.WaitForAsync(reference, CancellationToken.None));
        var fetched = await transfer.WaitForAsync(reference, CancellationToken.None);

        Assert.Equal(2, server.Requests);
        Assert.StartsWith("bytes=", secondRange);
        Assert.True(long.Parse(secondRange!["bytes=".Length..^1], System.Globalization.CultureInfo.InvariantCulture) > 0, $"the second request asked for {secondRange}");
        Assert.Equal(bytes, await File.ReadAllBytesAsync(fetched.File));
        Assert.Equal(expectedRoot, fetched.Tree.Root(3_000));
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!condition())
            await Task.Delay(10, timeout.Token);
    }

    private static async Task<FetchedSnapshot> WaitUntilReadyAsync(SnapshotTransfer transfer, SnapshotReference reference)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            try
            {
                return await transfer.WaitForAsync(reference, timeout.Token);
            }
            catch (SnapshotNotReadyException)
            {
            }
        }
    }

    private SnapshotTransfer NewTransfer(TimeSpan waitPerRequest)
        => new(Follower, new HttpClientHandler(), root.CreateSubdirectory("follower"), waitPerRequest, NullLogger.Instance);

    private static SnapshotReference ReferenceTo(SnapshotServer server, byte[] bytes)
        => new("node1", server.Url, SnapshotIndex, SnapshotTerm, bytes.Length, SHA256.HashData(bytes));

    // A projection of `entries` notes copied as a snapshot is, and the root of its tree.
    private async Task<(string File, byte[] Root)> WriteSourceSnapshotAsync(int entries)
    {
        var source = root.CreateSubdirectory("source");
        using var store = new LedgerStore(Path.Combine(source.FullName, "ledger.db"), []);
        var tree = new MerkleTree(store.ReadLeafHashes);
        var commands = Enumerable.Range(0, entries)
            .Select(i => SingleNodeApply.Note($"note {i}"))
            .ToArray();
        await SingleNodeApply.ApplyAsync(source, store, tree, commands);

        var file = Path.Combine(source.FullName, $"{SnapshotIndex}-{SnapshotTerm}");
        using (var view = store.BeginCopy())
            view.WriteTo(file);
        return (file, tree.Root(entries));
    }

    public void Dispose() => root.Delete(recursive: true);

    /// <summary>Serves the snapshot path over HTTP on a loopback port; the body is written by the test.</summary>
    private sealed class SnapshotServer : IAsyncDisposable
    {
        private readonly HttpListener listener = new();
        private readonly Func<HttpListenerContext, int, Task> respond;
        private readonly Task serving;
        private int requests;

        private SnapshotServer(Func<HttpListenerContext, int, Task> respond)
        {
            this.respond = respond;
            Url = new Uri($"http://127.0.0.1:{FreePort()}/");
            listener.Prefixes.Add(Url.ToString());
            listener.Start();
            serving = ServeAsync();
        }

        public Uri Url { get; }

        public int Requests => Volatile.Read(ref requests);

        public static SnapshotServer Start(Func<HttpListenerContext, int, Task> respond) => new(respond);

        private async Task ServeAsync()
        {
            while (listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                _ = Task.Run(async () =>
                {
                    var attempt = Interlocked.Increment(ref requests);
                    using var response = context.Response;
                    if (context.Request.Url!.AbsolutePath != $"{SnapshotTransfer.PathPrefix}{SnapshotIndex}-{SnapshotTerm}")
                    {
                        response.StatusCode = 404;
                        return;
                    }

                    response.SendChunked = true;
                    await respond(context, attempt);
                });
            }
        }

        private static int FreePort()
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            return ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        public async ValueTask DisposeAsync()
        {
            listener.Stop();
            listener.Close();
            await serving;
        }
    }
}
