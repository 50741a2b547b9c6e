namespace Health.Ledger.Entries;

/// <summary>The kinds the ledger itself defines: membership and checkpoints.</summary>
public static class LedgerEntryKinds
{
    /// <summary>A signed statement of the tree size and root; written by the leader.</summary>
    public static readonly EntryKind Checkpoint = EntryKind.Create(
        "Checkpoint", ["treeSize", "root", "signer", "keyId", "signature"], clientAppendable: false);

    /// <summary>A node admitted to the consortium.</summary>
    public static readonly EntryKind NodeAdmitted = EntryKind.Create(
        "NodeAdmitted", ["nodeId", "organization", "certificateSha256"]);

    /// <summary>A node removed from the consortium.</summary>
    public static readonly EntryKind NodeRemoved = EntryKind.Create("NodeRemoved", ["nodeId"], ["reason"]);

    /// <summary>A voting member joined the Raft group; written by the leader after the configuration change.</summary>
    public static readonly EntryKind MemberAdded = EntryKind.Create(
        "MemberAdded", ["nodeId", "raftEndPoint", "httpUrl"], clientAppendable: false);

    /// <summary>A voting member left the Raft group; written by the leader after the configuration change.</summary>
    public static readonly EntryKind MemberRemoved = EntryKind.Create("MemberRemoved", ["nodeId"], clientAppendable: false);

    /// <summary>Every kind above.</summary>
    public static IReadOnlyList<EntryKind> All { get; } = [Checkpoint, NodeAdmitted, NodeRemoved, MemberAdded, MemberRemoved];
}
