namespace Health.Ledger.Replication;

/// <summary>A point-in-time view of one node's ledger and Raft state.</summary>
/// <param name="NodeId">This node.</param>
/// <param name="Role">leader, follower or candidate.</param>
/// <param name="Term">Current Raft term.</param>
/// <param name="LeaderId">The known leader, or null.</param>
/// <param name="CommitIndex">Raft commit index.</param>
/// <param name="AppliedIndex">Raft index applied to the projection.</param>
/// <param name="TreeSize">Number of ledger entries applied.</param>
/// <param name="Root">Hex Merkle root of those entries.</param>
/// <param name="LatestCheckpointIndex">Ledger index of the newest checkpoint, or null.</param>
/// <param name="Members">The voting members and whether each is reachable.</param>
/// <param name="DivergedAt">
/// The ledger index of the first checkpoint whose root this node's own tree did not match, or null.
/// A node with one holds a ledger that is not the group's: it reports itself not ready.
/// </param>
/// <param name="Recovering">
/// Whether this node lost its Raft log (restored from a backup, or its log set aside) and has not
/// yet caught up: meanwhile it neither votes nor stands for election.
/// </param>
public sealed record LedgerStatus(
    string NodeId, string Role, long Term, string? LeaderId, long CommitIndex, long AppliedIndex,
    long TreeSize, string Root, long? LatestCheckpointIndex, IReadOnlyList<LedgerMemberStatus> Members, long? DivergedAt, bool Recovering);

/// <summary>One member as this node sees it.</summary>
/// <param name="NodeId">Member id.</param>
/// <param name="RaftEndPoint">Raft address.</param>
/// <param name="HttpUrl">HTTP base URL.</param>
/// <param name="Status">available, unavailable or unknown, as Raft last saw it.</param>
/// <param name="IsLeader">Whether it is the leader.</param>
public sealed record LedgerMemberStatus(string NodeId, string RaftEndPoint, string HttpUrl, string Status, bool IsLeader);
