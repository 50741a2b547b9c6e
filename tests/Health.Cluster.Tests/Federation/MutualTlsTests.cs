using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Health.Ledger.Replication;
using Health.Ledger.Security;

namespace Health.Cluster.Tests.Federation;

/// <summary>
/// Members speak mutual TLS (Raft and member-to-member HTTP): a peer is accepted only with a
/// certificate from the consortium CA naming a node the ledger admits at that moment.
/// </summary>
public sealed class MutualTlsTests
{
    private static X509Certificate2 Load((string Certificate, string Key) files)
        => X509CertificateLoader.LoadPkcs12(X509Certificate2.CreateFromPemFile(files.Certificate, files.Key).Export(X509ContentType.Pkcs12), null);

    private static string Fingerprint(string certificateFile) => Convert.ToHexStringLower(SHA256.HashData(X509CertificateLoader.LoadCertificateFromFile(certificateFile).RawData));

    // A certificate that names node1 but that no consortium CA issued.
    private static X509Certificate2 SelfSigned(string nodeId)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={nodeId}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddUri(new Uri(ConsortiumIdentity.NodeUriPrefix + nodeId));
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    // What a member-only route answers to a caller presenting this client certificate: a member gets
    // past the member check to the body's validation (400 for a body that is not a batch).
    private static async Task<HttpStatusCode> InternalCallAsync(NodeProcess node, X509Certificate2? certificate, CancellationToken token)
    {
        using var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        if (certificate is not null)
            handler.SslOptions.ClientCertificates = [certificate];
        using var client = new HttpClient(handler);
        using var body = new ByteArrayContent([1]);
        using var response = await client.PostAsync(new Uri(node.HttpUrl, LedgerNode.ReplicatePath), body, token);
        return response.StatusCode;
    }

    // Whether the node's Raft port keeps a TLS connection open for this client certificate: a
    // refused certificate fails the handshake or gets the connection closed at once.
    private static async Task<bool> RaftAcceptsAsync(int raftPort, X509Certificate2 certificate, CancellationToken token)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, raftPort, token);
        await using var tls = new SslStream(tcp.GetStream(), false, (_, _, _, _) => true);
        try
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "health-ledger-node", ClientCertificates = [certificate] }, token);
            var read = tls.ReadAsync(new byte[1], token).AsTask();
            var finished = await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(2), token));
            return finished != read;
        }
        catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
        {
            return false;
        }
    }

    private static string MemberRaftPort(LedgerCluster cluster, string nodeId)
        => cluster.Members.Single(m => m.StartsWith(nodeId + "=", StringComparison.Ordinal)).Split('=')[1].Split(':')[1];

    [Fact]
    public async Task Members_replicate_over_mutual_tls_and_strangers_and_plain_http_are_refused()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var token = timeout.Token;
        using var cluster = LedgerCluster.WithTls();
        try
        {
            var leader = await cluster.WaitForLeaderAsync(token);
            var follower = cluster.Nodes.First(n => n != leader);
            var index = await cluster.AppendAsync(follower, "forwarded over mutual TLS", token);
            await cluster.WaitForConvergenceAsync(index, token);

            using var member = Load(cluster.CertificateOf("node1"));
            using var stranger = SelfSigned("node1");
            using var unadmitted = Load(cluster.CertificateOf("node9"));
            var target = cluster.Nodes[1];
            var raft = int.Parse(MemberRaftPort(cluster, target.NodeId), System.Globalization.CultureInfo.InvariantCulture);

            Assert.Equal(HttpStatusCode.BadRequest, await InternalCallAsync(target, member, token));
            Assert.Equal(HttpStatusCode.Forbidden, await InternalCallAsync(target, null, token));
            Assert.Equal(HttpStatusCode.Forbidden, await InternalCallAsync(target, stranger, token));
            Assert.Equal(HttpStatusCode.Forbidden, await InternalCallAsync(target, unadmitted, token));
            Assert.True(await RaftAcceptsAsync(raft, member, token));
            Assert.False(await RaftAcceptsAsync(raft, stranger, token));
            Assert.False(await RaftAcceptsAsync(raft, unadmitted, token));

            // Plain HTTP to the TLS port gets no answer, and the node goes on serving.
            using var plain = new HttpClient();
            var plainUrl = new UriBuilder(target.HttpUrl) { Scheme = Uri.UriSchemeHttp, Path = "/healthz" }.Uri;
            await Assert.ThrowsAsync<HttpRequestException>(() => plain.GetAsync(plainUrl, token));
            using var healthy = await cluster.Client.GetAsync(new Uri(target.HttpUrl, "/healthz"), token);
            Assert.Equal(HttpStatusCode.OK, healthy.StatusCode);
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(cluster.Diagnostics(), e);
        }
    }

    [Fact]
    public async Task Admission_needs_a_majority_and_pins_the_certificate_and_removal_refuses_it()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var token = timeout.Token;
        using var cluster = LedgerCluster.WithTls();
        try
        {
            await cluster.WaitForLeaderAsync(token);
            var target = cluster.Nodes[0];
            using var node4 = Load(cluster.CertificateOf("node4"));
            var fingerprint = Fingerprint(cluster.CertificateOf("node4").Certificate);

            // One approval of three is not a majority: node4 stays out.
            await cluster.ProposeAndApproveAsync("admit", "node4", fingerprint, approvals: 1, token);
            Assert.Equal(HttpStatusCode.Forbidden, await InternalCallAsync(target, node4, token));

            // A second proposal approved by two takes effect, for that certificate only.
            await cluster.ProposeAndApproveAsync("admit", "node4", fingerprint, approvals: 2, token);
            Assert.Equal(HttpStatusCode.BadRequest, await InternalCallAsync(target, node4, token));
            File.Delete(cluster.CertificateOf("node4").Certificate);
            using var reissued = Load(cluster.CertificateOf("node4"));
            Assert.Equal(HttpStatusCode.Forbidden, await InternalCallAsync(target, reissued, token));

            // Removing a founding member refuses its certificate on both paths from then on.
            using var node3 = Load(cluster.CertificateOf("node3"));
            var raft = int.Parse(MemberRaftPort(cluster, target.NodeId), System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(await RaftAcceptsAsync(raft, node3, token));
            await cluster.ProposeAndApproveAsync("remove", "node3", fingerprint, approvals: 2, token);
            Assert.Equal(HttpStatusCode.Forbidden, await InternalCallAsync(target, node3, token));
            Assert.False(await RaftAcceptsAsync(raft, node3, token));
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(cluster.Diagnostics(), e);
        }
    }
}
