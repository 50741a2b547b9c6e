namespace Health.Ledger.Entries;

/// <summary>The kinds the ledger itself defines: governance, membership and checkpoints.</summary>
public static class LedgerEntryKinds
{
    /// <summary>A signed statement of the tree size and root; written by the leader.</summary>
    public static readonly EntryKind Checkpoint = EntryKind.Create(
        "Checkpoint", ["treeSize", "root", "signer", "keyId", "signature"], clientAppendable: false);

    /// <summary>
    /// A proposal to admit a node to the consortium, pinned to its certificate; it takes effect when
    /// a majority of the current members' operators approve it (<see cref="GovernanceVote"/>).
    /// </summary>
    public static readonly EntryKind NodeAdmitted = EntryKind.Create(
        "NodeAdmitted", ["nodeId", "organization", "certificateSha256"], clientAppendable: false);

    /// <summary>A proposal to remove a node from the consortium; takes effect like an admission.</summary>
    public static readonly EntryKind NodeRemoved = EntryKind.Create("NodeRemoved", ["nodeId"], ["reason"], clientAppendable: false);

    /// <summary>A member's operator approves the proposal at ledger index <c>proposal</c>.</summary>
    public static readonly EntryKind GovernanceVote = EntryKind.Create("GovernanceVote", ["proposal", "voter"], clientAppendable: false);

    /// <summary>A voting member joined the Raft group; written by the leader after the configuration change.</summary>
    public static readonly EntryKind MemberAdded = EntryKind.Create(
        "MemberAdded", ["nodeId", "raftEndPoint", "httpUrl"], clientAppendable: false);

    /// <summary>A voting member left the Raft group; written by the leader after the configuration change.</summary>
    public static readonly EntryKind MemberRemoved = EntryKind.Create("MemberRemoved", ["nodeId"], clientAppendable: false);

    /// <summary>
    /// A member that had lost its Raft log (restored from a backup, or its log damaged or set aside)
    /// holds the group's log again up to this entry; from here on it votes and may lead again.
    /// </summary>
    public static readonly EntryKind MemberRecovered = EntryKind.Create("MemberRecovered", ["nodeId", "reason"], clientAppendable: false);

    /// <summary>
    /// The certificate whose key signs a node's checkpoints (PEM), recorded by the node before its
    /// first checkpoint so that anyone can check checkpoints against the consortium CA offline.
    /// </summary>
    public static readonly EntryKind SignerCertificate = EntryKind.Create("SignerCertificate", ["nodeId", "keyId", "certificate"], clientAppendable: false);

    /// <summary>An operator's note on the ledger (a maintenance window, a drill); never patient data.</summary>
    public static readonly EntryKind OperatorNote = EntryKind.Create("OperatorNote", ["note"], ["topic"]);

    /// <summary>Every kind above.</summary>
    public static IReadOnlyList<EntryKind> All { get; } = [Checkpoint, SignerCertificate, NodeAdmitted, NodeRemoved, GovernanceVote, MemberAdded, MemberRemoved, MemberRecovered, OperatorNote];
}
