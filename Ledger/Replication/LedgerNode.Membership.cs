using System.Net.Http.Headers;
using Health.Ledger.Entries;
using Health.Ledger.Storage;
using Microsoft.Extensions.Logging;

namespace Health.Ledger.Replication;

public sealed partial class LedgerNode
{
    /// <summary>Path of the members-only endpoint that adds or removes a voting member on the leader.</summary>
    public const string MembershipPath = "/internal/ledger/members";

    private IReadOnlyList<LedgerMember> directory = [];
    private long directoryVersion = -1;

    /// <summary>
    /// The voting members as this node knows them: the configured ones, changed by the
    /// <c>MemberAdded</c> and <c>MemberRemoved</c> entries applied so far.
    /// </summary>
    public IReadOnlyList<LedgerMember> Members
    {
        get
        {
            RefreshDirectory();
            return Volatile.Read(ref directory);
        }
    }

    /// <summary>
    /// Adds a voting member: the leader catches the new node up, commits the new Raft configuration,
    /// then records <c>MemberAdded</c>. The new node must already be running with <c>Join</c> set.
    /// Any member may be asked; followers pass the request to the leader.
    /// </summary>
    /// <exception cref="LedgerUnavailableException">No leader, or the new node did not catch up.</exception>
    public async Task AddMemberAsync(LedgerMember member, CancellationToken token)
    {
        if (!IsLeader)
        {
            await ForwardMembershipAsync(HttpMethod.Post, member.ToString(), token).ConfigureAwait(false);
            return;
        }

        if (!await cluster.AddMemberAsync(member.RaftEndPoint, token).ConfigureAwait(false))
            throw new LedgerUnavailableException($"Member {member.NodeId} could not be added: it did not catch up or the change was not committed.");
        await AppendAsync(new LedgerCommand(LedgerEntryKinds.MemberAdded.Name, new Dictionary<string, string>
        {
            ["nodeId"] = member.NodeId,
            ["raftEndPoint"] = member.RaftEndPoint.ToString(),
            ["httpUrl"] = member.HttpUrl.ToString(),
        }), token).ConfigureAwait(false);
        LogMemberAdded(logger, member.NodeId, member.RaftEndPoint.ToString());
    }

    /// <summary>Removes a voting member and records <c>MemberRemoved</c>. Any member may be asked.</summary>
    /// <exception cref="KeyNotFoundException">No member has that id.</exception>
    /// <exception cref="LedgerUnavailableException">No leader, or the change was not committed.</exception>
    public async Task RemoveMemberAsync(string nodeId, CancellationToken token)
    {
        var member = Members.FirstOrDefault(m => m.NodeId == nodeId) ?? throw new KeyNotFoundException($"No member is called {nodeId}.");
        if (!IsLeader)
        {
            await ForwardMembershipAsync(HttpMethod.Delete, member.ToString(), token).ConfigureAwait(false);
            return;
        }

        if (!await cluster.RemoveMemberAsync(member.RaftEndPoint, token).ConfigureAwait(false))
            throw new LedgerUnavailableException($"Member {nodeId} could not be removed: the change was not committed.");
        await AppendAsync(new LedgerCommand(LedgerEntryKinds.MemberRemoved.Name, new Dictionary<string, string> { ["nodeId"] = nodeId }), token).ConfigureAwait(false);
        LogMemberRemoved(logger, nodeId);
    }

    private async Task ForwardMembershipAsync(HttpMethod method, string member, CancellationToken token)
    {
        var leader = MemberAt(cluster.Leader?.EndPoint) ?? throw new LedgerUnavailableException("No leader is known.");
        using var request = new HttpRequestMessage(method, new Uri(leader.HttpUrl, MembershipPath))
        {
            Content = new StringContent(member),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        using var response = await peerClient.SendAsync(request, token).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw new LedgerUnavailableException($"The leader {leader.NodeId} answered {(int)response.StatusCode} to the membership change.");
    }

    private void RefreshDirectory()
    {
        var version = Store.MembershipVersion;
        if (version == Volatile.Read(ref directoryVersion))
            return;
        Volatile.Write(ref directory, BuildDirectory(options.Members, Store));
        Volatile.Write(ref directoryVersion, version);
    }

    private static IReadOnlyList<LedgerMember> BuildDirectory(IReadOnlyList<LedgerMember> configured, LedgerStore store)
    {
        var (added, removed) = store.ReadMembershipChanges();
        var members = configured.ToDictionary(m => m.NodeId, StringComparer.Ordinal);
        foreach (var (nodeId, raft, http) in added)
            members[nodeId] = LedgerMember.Parse($"{nodeId}={raft}={http}");
        foreach (var nodeId in removed)
            members.Remove(nodeId);
        return members.Values.OrderBy(m => m.NodeId, StringComparer.Ordinal).ToList();
    }

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Member {NodeId} at {RaftEndPoint} added to the Raft group")]
    private static partial void LogMemberAdded(ILogger logger, string nodeId, string raftEndPoint);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Information, Message = "Member {NodeId} removed from the Raft group")]
    private static partial void LogMemberRemoved(ILogger logger, string nodeId);
}
