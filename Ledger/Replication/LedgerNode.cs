using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using DotNext.Net.Security;
using System.Net;
using System.Threading.Channels;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.Membership;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Health.Ledger.Checkpoints;
using Health.Ledger.Merkle;
using Health.Ledger.Governance;
using Health.Ledger.Security;
using Health.Ledger.Storage;
using Microsoft.Extensions.Logging;

namespace Health.Ledger.Replication;

/// <summary>
/// One member of the replicated ledger: DotNext Raft over TCP with a persistent write-ahead log,
/// the SQLite projection, the Merkle tree, group-committed appends (from any member: followers
/// forward to the leader) and the leader's signed checkpoints.
/// </summary>
public sealed partial class LedgerNode : IAsyncDisposable
{
    private readonly LedgerNodeOptions options;
    private readonly ILogger logger;
    private readonly LedgerStateMachine stateMachine;
    private readonly DurableWriteAheadLog log;
    private readonly RaftCluster cluster;
    private readonly CancellationTokenSource lifetime = new();
    private readonly HttpClient peerClient;
    private readonly LedgerMetrics metrics;
    private Task background = Task.CompletedTask;

    private LedgerNode(LedgerNodeOptions options, LedgerStore store, MerkleTree tree, LedgerStateMachine stateMachine, DurableWriteAheadLog log,
        RaftCluster cluster, NodeSigningKey signingKey, Admission admission, ILogger logger)
    {
        Admission = admission;
        Tree = tree;
        this.options = options;
        this.logger = logger;
        this.stateMachine = stateMachine;
        this.log = log;
        this.cluster = cluster;
        Store = store;
        SigningKey = signingKey;
        peerClient = new HttpClient(CreatePeerHandler()) { Timeout = TimeSpan.FromSeconds(10) };
        appendQueue = Channel.CreateBounded<PendingAppend>(new BoundedChannelOptions(65536) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        inFlight = new SemaphoreSlim(options.MaxBatchesInFlight);
        retry = CreateRetryPipeline();
        metrics = new LedgerMetrics(() => (log.LastCommittedEntryIndex, log.LastAppliedIndex, tree.Size));
    }

    /// <summary>The name of the ledger's meter, for metric exporters.</summary>
    public const string MeterName = LedgerMetrics.MeterName;

    /// <summary>This node's id.</summary>
    public string NodeId => options.NodeId;

    /// <summary>This node's member record (addresses).</summary>
    public LedgerMember Self => options.Self;

    /// <summary>The applied ledger, for queries.</summary>
    public LedgerStore Store { get; }

    /// <summary>The Merkle tree over the applied entries.</summary>
    public MerkleTree Tree { get; }

    /// <summary>The key this node signs checkpoints with.</summary>
    public NodeSigningKey SigningKey { get; }

    /// <summary>Which nodes the consortium admits, from the applied governance entries.</summary>
    public Admission Admission { get; }

    /// <summary>This node's consortium certificate and CA, or null when it runs without TLS (development only).</summary>
    public ConsortiumIdentity? Identity => options.Identity;

    /// <summary>Whether a peer's certificate is the consortium's and names a node admitted now.</summary>
    public bool IsAdmittedPeer(X509Certificate2 certificate)
        => options.Identity is { } identity && identity.IsAdmittedPeer(certificate, Admission.IsAdmitted);

    /// <summary>
    /// An HTTP handler for calls to other members: with TLS configured it presents this node's
    /// certificate and accepts only admitted consortium members as servers.
    /// </summary>
    public SocketsHttpHandler CreatePeerHandler() => CreatePeerHandler(options.Identity, (id, fingerprint) => Admission.IsAdmitted(id, fingerprint));

    private static SocketsHttpHandler CreatePeerHandler(ConsortiumIdentity? identity, Func<string, string, bool> isAdmitted)
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        if (identity is not null)
        {
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = [identity.Certificate],
                RemoteCertificateValidationCallback = identity.PeerValidator(isAdmitted),
            };
        }

        return handler;
    }

    /// <summary>Path, followed by "{index}-{term}", of the members-only endpoint serving this node's snapshot files.</summary>
    public const string SnapshotPath = SnapshotTransfer.PathPrefix;

    /// <summary>
    /// The snapshot file at Raft <paramref name="index"/> and <paramref name="term"/>, if this node
    /// still holds it: members behind the compacted log fetch it from here.
    /// </summary>
    public FileInfo? FindSnapshot(long index, long term) => stateMachine.FindSnapshot(index, term);

    /// <summary>Whether this node is the Raft leader right now.</summary>
    public bool IsLeader => !cluster.LeadershipToken.IsCancellationRequested;

    /// <summary>
    /// Opens the node's data directory (restoring the projection and replaying the log) and joins
    /// the Raft group.
    /// </summary>
    /// <param name="options">The node's settings.</param>
    /// <param name="projections">Modules' projections, applied with every entry.</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="token">Cancels start-up.</param>
    public static async Task<LedgerNode> StartAsync(LedgerNodeOptions options, IReadOnlyList<ILedgerProjection> projections,
        ILoggerFactory loggerFactory, CancellationToken token)
    {
        var root = Directory.CreateDirectory(options.DataDirectory);
        var logger = loggerFactory.CreateLogger<LedgerNode>();
        var signingKey = options.Identity is { } signer
            ? NodeSigningKey.FromCertificate(signer.Certificate)
            : NodeSigningKey.LoadOrCreate(Path.Combine(root.FullName, "node-signing-key.pem"));

        // The founding members are the same on every node: a joining node leaves itself out.
        var founding = options.Members.Select(m => m.NodeId).Where(id => !options.Join || id != options.NodeId).ToHashSet(StringComparer.Ordinal);
        var store = new LedgerStore(Path.Combine(root.FullName, "ledger.db"), [new GovernanceProjection(founding), .. projections]);
        var admission = new Admission(store, founding);
        var tree = new MerkleTree(store.ReadLeafHashes);
        var snapshotDirectory = root.CreateSubdirectory("snapshots");
        var transfer = new SnapshotTransfer(options.Self, CreatePeerHandler(options.Identity, admission.IsAdmitted), snapshotDirectory, options.RaftRequestTimeout / 3, logger);
        var stateMachine = new LedgerStateMachine(snapshotDirectory, store, tree, options.SnapshotInterval, transfer, logger);
        if (store.SetAsideAs is { } damagedProjection)
            LogProjectionDamaged(logger, damagedProjection);
        var logOptions = new WriteAheadLog.Options
        {
            Location = Path.Combine(root.FullName, "raft"),
            HashAlgorithm = WriteAheadLog.IntegrityHashAlgorithm.Crc32,
            ChunkSize = 1 << 20,
        };
        await RestoreAsync(stateMachine, logOptions.Location, logger, token).ConfigureAwait(false);
        if (await LogIntegrityCheck.SetAsideIfDamagedAsync(logOptions, stateMachine, token).ConfigureAwait(false) is { } damagedLog)
        {
            LogLogDamaged(logger, damagedLog);
            RaftStateLoss.Mark(root.FullName, "its Raft log failed its integrity check and was set aside");
        }

        var log = new DurableWriteAheadLog(logOptions, stateMachine, logger);

        // The projection applies only flushed entries, so it can be ahead of the log only when log
        // files were lost or damaged. Its extra entries may not be the group's: rebuild it from the
        // newest copy and the log, or take the ledger again from the group, rather than skip the
        // group's entries and diverge.
        if (store.RaftIndex > log.LastEntryIndex)
        {
            LogProjectionAhead(logger, store.RaftIndex, log.LastEntryIndex);
            RaftStateLoss.Mark(root.FullName, "its Raft log had lost entries the projection held");
            await log.DisposeAsync().ConfigureAwait(false);
            stateMachine.ResetProjection();
            await RestoreAsync(stateMachine, logOptions.Location, logger, token).ConfigureAwait(false);
            log = new DurableWriteAheadLog(logOptions, stateMachine, logger);
        }

        var members = BuildDirectory(options.Members, store);
        var stateLost = options.Join ? null : RaftStateLoss.Read(root.FullName);
        if (stateLost is not null && members.Count < 2)
        {
            // A group of one has no other member to catch up from: its log is the ledger.
            LogSoleMemberLostState(logger, stateLost);
            RaftStateLoss.Clear(root.FullName);
            stateLost = null;
        }

        log.RefusesVotes = stateLost is not null;
        var self = options.Self;
        var configuration = new RaftCluster.TcpConfiguration(self.RaftEndPoint)
        {
            LowerElectionTimeout = options.LowerElectionTimeout,
            UpperElectionTimeout = options.UpperElectionTimeout,
            RequestTimeout = options.RaftRequestTimeout,
            ColdStart = false,
            // Heartbeats every 150 ms with the default 1 s, not DotNext's default of half the shortest
            // election timeout: measured at 256 clients, the leader's peak memory was 80 MiB higher
            // with 500 ms heartbeats (anonymous memory outside the GC heap's committed size).
            HeartbeatThreshold = 0.15,
            ConfigurationStorage = null,
            LoggerFactory = new RaftLoggerFactory(loggerFactory),
            TransmissionBlockSize = 65536,
            SslOptions = options.Identity is { } identity ? RaftTls(identity, admission) : null,

            // Never a candidate while it catches up after losing its log (RunRecoveryAsync).
            Standby = stateLost is not null,
        };
        var storage = (InMemoryClusterConfigurationStorage<EndPoint>)configuration.ConfigurationStorage!;
        // A joining node starts without a configuration and waits, frozen, until the leader adds it.
        if (!options.Join)
        {
            var builder = storage.CreateInitialConfigurationBuilder();
            foreach (var member in members)
                builder.Add(member.RaftEndPoint);
            builder.Build();
        }

        var cluster = new RaftCluster(configuration) { AuditTrail = log };
        var node = new LedgerNode(options, store, tree, stateMachine, log, cluster, signingKey, admission, logger);
        await cluster.StartAsync(token).ConfigureAwait(false);
        node.background = Task.WhenAll(
            node.RunAppenderAsync(node.lifetime.Token),
            node.RunCheckpointerAsync(node.lifetime.Token),
            stateLost is null ? Task.CompletedTask : node.RunRecoveryAsync(stateLost, node.lifetime.Token));
        LogStarted(logger, options.NodeId, self.RaftEndPoint, store.RaftIndex, node.Tree.Size);
        return node;
    }

    // A projection behind the compacted log (lost, or set aside as damaged) cannot be rebuilt from
    // the log: the log is set aside too, and the node takes the ledger again from the group.
    private static async Task RestoreAsync(LedgerStateMachine stateMachine, string logLocation, ILogger logger, CancellationToken token)
    {
        if (await stateMachine.RestoreAsync(token).ConfigureAwait(false))
            return;
        var aside = $"{logLocation}-behind-{DateTime.UtcNow:yyyyMMddTHHmmssZ}";
        RaftStateLoss.Mark(Path.GetDirectoryName(logLocation)!, "its projection was behind the compacted Raft log, which was set aside");
        LogIntegrityCheck.MoveLog(logLocation, aside);
        stateMachine.ForgetLedger();
        LogProjectionBehind(logger, aside);
    }

    // Raft connections are mutual TLS both ways: each side presents its node certificate and accepts
    // the other only if it chains to the consortium CA and names a node admitted at that moment.
    private static SslOptions RaftTls(ConsortiumIdentity identity, Admission admission) => new()
    {
        ServerOptions = new SslServerAuthenticationOptions
        {
            ServerCertificate = identity.Certificate,
            ClientCertificateRequired = true,
            RemoteCertificateValidationCallback = identity.PeerValidator(admission.IsAdmitted),
        },
        ClientOptions = new SslClientAuthenticationOptions
        {
            TargetHost = "health-ledger-node",
            ClientCertificates = [identity.Certificate],
            RemoteCertificateValidationCallback = identity.PeerValidator(admission.IsAdmitted),
        },
    };

    /// <summary>Waits until the entry at ledger index <paramref name="index"/> is applied on this node.</summary>
    /// <returns>Whether it was applied within <paramref name="timeout"/>.</returns>
    public async Task<bool> WaitForEntryAsync(long index, TimeSpan timeout, CancellationToken token)
    {
        if (Tree.Size >= index)
            return true;
        var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnApplied(long size)
        {
            if (size >= index)
                reached.TrySetResult();
        }

        stateMachine.Applied += OnApplied;
        try
        {
            if (Tree.Size >= index)
                return true;
            await reached.Task.WaitAsync(timeout, token).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
        finally
        {
            stateMachine.Applied -= OnApplied;
        }
    }

    /// <summary>Waits until some member is known as leader.</summary>
    public async Task WaitForLeaderAsync(TimeSpan timeout, CancellationToken token)
    {
        if (await cluster.WaitForLeaderAsync(timeout, token).ConfigureAwait(false) is null)
            throw new LedgerUnavailableException("No leader was elected in time.");
    }

    /// <summary>
    /// Why this node's Raft log stopped working, or null. The log then refuses every Raft request
    /// and append until the node is restarted (it catches up from the group after).
    /// </summary>
    public string? LogFailure => log.Failure?.Message;

    /// <summary>This node's view of the ledger and the Raft group.</summary>
    public LedgerStatus Status()
    {
        var leader = cluster.Leader?.EndPoint;
        var members = Members.Select(m =>
        {
            var peer = cluster.Members.FirstOrDefault(p => Equals(p.EndPoint, m.RaftEndPoint));
            var status = m.NodeId == NodeId ? "available" : peer?.Status.ToString().ToLowerInvariant() ?? "unknown";
            return new LedgerMemberStatus(m.NodeId, m.RaftEndPoint.ToString(), m.HttpUrl.ToString(), status, Equals(leader, m.RaftEndPoint));
        }).ToList();
        var size = Tree.Size;
        return new LedgerStatus(
            NodeId,
            IsLeader ? "leader" : leader is null ? "candidate" : "follower",
            cluster.Term,
            MemberAt(leader)?.NodeId,
            log.LastCommittedEntryIndex,
            log.LastAppliedIndex,
            size,
            Convert.ToHexStringLower(Tree.Root(size)),
            Store.FindLatestCheckpoint(),
            members,
            Store.FirstDivergence,
            IsRecovering);
    }

    private LedgerMember? MemberAt(EndPoint? endPoint)
        => endPoint is null ? null : Members.FirstOrDefault(m => Equals(m.RaftEndPoint, endPoint));

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await lifetime.CancelAsync().ConfigureAwait(false);
        appendQueue.Writer.TryComplete();
        await WithinShutdownTimeoutAsync(background, "stopping the appender and the checkpointer").ConfigureAwait(false);
        await WithinShutdownTimeoutAsync(cluster.StopAsync(CancellationToken.None), "stopping Raft").ConfigureAwait(false);
        await WithinShutdownTimeoutAsync(cluster.DisposeAsync().AsTask(), "closing Raft connections").ConfigureAwait(false);
        await WithinShutdownTimeoutAsync(log.DisposeAsync().AsTask(), "closing the write-ahead log").ConfigureAwait(false);
        await stateMachine.DisposeAsync().ConfigureAwait(false);
        Store.Dispose();
        SigningKey.Dispose();
        peerClient.Dispose();
        metrics.Dispose();
        lifetime.Dispose();
        inFlight.Dispose();
    }

    // A stop that hangs in the Raft layer must not hold the process: everything acknowledged is
    // already on disk (commit waits for the log's flush), so the node logs it and goes on stopping.
    private async Task WithinShutdownTimeoutAsync(Task step, string what)
    {
        if (await Task.WhenAny(step, Task.Delay(ShutdownStepTimeout)).ConfigureAwait(false) == step)
            await step.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        else
            LogShutdownStepSlow(logger, what, ShutdownStepTimeout.TotalSeconds);
    }

    private static readonly TimeSpan ShutdownStepTimeout = TimeSpan.FromSeconds(10);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Warning, Message = "Shutdown: {Step} did not finish within {Seconds} s; the node stops without waiting for it")]
    private static partial void LogShutdownStepSlow(ILogger logger, string step, double seconds);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Warning, Message = "The projection reached Raft index {ProjectionIndex} but the log kept only {LogIndex}; rebuilding the projection from the newest snapshot copy and the group")]
    private static partial void LogProjectionAhead(ILogger logger, long projectionIndex, long logIndex);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Warning, Message = "The projection holds fewer entries than the Raft log was compacted to, and no snapshot copy holds them; the log was moved to {Path} and this node takes the ledger again from the group")]
    private static partial void LogProjectionBehind(ILogger logger, string path);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Warning, Message = "The ledger projection failed SQLite's integrity check and was moved to {Path}; it is rebuilt from a snapshot copy and the log, or taken again from the group")]
    private static partial void LogProjectionDamaged(ILogger logger, string path);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Warning, Message = "The Raft log failed its integrity check and was moved to {Path}; this node receives the entries again from the group")]
    private static partial void LogLogDamaged(ILogger logger, string path);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Ledger node {NodeId} started on {RaftEndPoint}: projection at Raft index {RaftIndex}, tree size {TreeSize}")]
    private static partial void LogStarted(ILogger logger, string nodeId, IPEndPoint raftEndPoint, long raftIndex, long treeSize);
}
