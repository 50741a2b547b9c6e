using Health.Ledger.Storage;

namespace Health.Ledger.Replication;

/// <summary>
/// Records that a node's Raft log no longer holds what the node acknowledged to its group: it was
/// restored from a backup, or its log was lost, damaged or set aside. Such a node starts as a
/// member that neither votes nor stands for election until it has caught up (docs/LEDGER.md
/// "A member that lost its Raft log").
/// </summary>
/// <remarks>
/// Raft's safety rests on every member keeping what it acknowledged and the votes it gave. A
/// member that forgot them, voting with an empty or shorter log, can make a majority with a member
/// that never received the group's latest committed entries and elect it; the new leader then
/// writes other entries at those indices, and members that applied the old ones part from the
/// group. The marker is a file beside the ledger, flushed before the node starts on it.
/// </remarks>
public static class RaftStateLoss
{
    private const string FileName = "raft-state-lost";

    /// <summary>Marks the ledger in <paramref name="ledgerDirectory"/> as having lost its Raft state, for <paramref name="reason"/>.</summary>
    public static void Mark(string ledgerDirectory, string reason)
    {
        Directory.CreateDirectory(ledgerDirectory);
        var path = Path.Combine(ledgerDirectory, FileName);
        if (File.Exists(path))
            return;
        File.WriteAllText(path, reason);
        DiskFlush.File(path);
        DiskFlush.Directory(ledgerDirectory);
    }

    /// <summary>Why the ledger in <paramref name="ledgerDirectory"/> lost its Raft state, or null if it did not.</summary>
    internal static string? Read(string ledgerDirectory)
    {
        var path = Path.Combine(ledgerDirectory, FileName);
        return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
    }

    /// <summary>Removes the mark once the node has caught up with its group.</summary>
    internal static void Clear(string ledgerDirectory) => File.Delete(Path.Combine(ledgerDirectory, FileName));
}
