using System.Globalization;

namespace Health.Ledger.Replication;

/// <summary>
/// Sets aside a stopped node's ledger state (the SQLite projection, the Raft log and the snapshots)
/// so that the node rejoins its group empty and is brought up to date by a snapshot from the
/// leader: the way back for a node whose ledger disagreed with the group's checkpoints. The node's
/// signing key and its Raft term and vote stay, so it never votes twice in a term.
/// </summary>
public static class LedgerRebuild
{
    /// <summary>Moves the ledger state out of <paramref name="ledgerDirectory"/>; returns where it went.</summary>
    public static string SetAside(string ledgerDirectory)
    {
        RaftStateLoss.Mark(ledgerDirectory, "its ledger was set aside to be rebuilt from the group");
        var aside = Directory.CreateDirectory(Path.Combine(ledgerDirectory, string.Create(CultureInfo.InvariantCulture, $"set-aside-{DateTime.UtcNow:yyyyMMddTHHmmssZ}")));
        foreach (var file in Directory.EnumerateFiles(ledgerDirectory, "ledger.db*"))
            File.Move(file, Path.Combine(aside.FullName, Path.GetFileName(file)));
        LogIntegrityCheck.MoveLog(Path.Combine(ledgerDirectory, "raft"), Path.Combine(aside.FullName, "raft"));
        var snapshots = Path.Combine(ledgerDirectory, "snapshots");
        if (Directory.Exists(snapshots))
            Directory.Move(snapshots, Path.Combine(aside.FullName, "snapshots"));
        return aside.FullName;
    }
}
