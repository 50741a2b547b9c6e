using System.Globalization;
using Dapper;
using Health.Ledger.Entries;
using Health.Ledger.Storage;
using Microsoft.Data.Sqlite;

namespace Health.Ledger.Governance;

/// <summary>
/// Consortium governance, as Microsoft CCF does it: a node is admitted (or removed) by a proposal
/// on the ledger that takes effect at the vote that gives it a majority of the current members.
/// Admission pins the node's certificate (SHA-256 of its DER bytes). The founding members named in
/// every node's configuration are admitted from the start, with any consortium certificate
/// carrying their node id, until removed.
/// </summary>
public sealed class GovernanceProjection(IReadOnlyCollection<string> foundingMembers) : ILedgerProjection
{
    /// <inheritdoc/>
    public void CreateSchema(SqliteConnection connection) => connection.Execute("""
        CREATE TABLE IF NOT EXISTS governance_proposals(idx INTEGER PRIMARY KEY, action TEXT NOT NULL, node_id TEXT NOT NULL,
            organization TEXT, fingerprint TEXT, effective_idx INTEGER);
        CREATE TABLE IF NOT EXISTS governance_votes(proposal_idx INTEGER NOT NULL, voter TEXT NOT NULL, idx INTEGER NOT NULL,
            PRIMARY KEY(proposal_idx, voter)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS admitted_nodes(node_id TEXT PRIMARY KEY, fingerprint TEXT, organization TEXT,
            admitted_idx INTEGER, removed_idx INTEGER) WITHOUT ROWID;
        """);

    /// <inheritdoc/>
    public void Apply(LedgerEntry entry, SqliteConnection connection, SqliteTransaction transaction)
    {
        var fields = entry.Fields;
        if (entry.Kind == LedgerEntryKinds.NodeAdmitted.Name || entry.Kind == LedgerEntryKinds.NodeRemoved.Name)
        {
            connection.Execute(
                "INSERT INTO governance_proposals(idx, action, node_id, organization, fingerprint) VALUES (@Index, @action, @nodeId, @organization, @fingerprint)",
                new
                {
                    entry.Index,
                    action = entry.Kind == LedgerEntryKinds.NodeAdmitted.Name ? "admit" : "remove",
                    nodeId = fields["nodeId"],
                    organization = fields.GetValueOrDefault("organization"),
                    fingerprint = fields.GetValueOrDefault("certificateSha256")?.ToLowerInvariant(),
                },
                transaction);
        }
        else if (entry.Kind == LedgerEntryKinds.GovernanceVote.Name)
        {
            ApplyVote(entry, connection, transaction);
        }
    }

    // A vote counts when its proposal is still open and the voter is a current member; the proposal
    // takes effect at the vote that makes the voters a majority of the current members.
    private void ApplyVote(LedgerEntry entry, SqliteConnection connection, SqliteTransaction transaction)
    {
        if (!long.TryParse(entry.Fields["proposal"], NumberStyles.None, CultureInfo.InvariantCulture, out var proposalIndex))
            return;
        var proposal = connection.QuerySingleOrDefault<(string Action, string NodeId, string? Organization, string? Fingerprint)?>(
            "SELECT action, node_id, organization, fingerprint FROM governance_proposals WHERE idx = @proposalIndex AND effective_idx IS NULL",
            new { proposalIndex }, transaction);
        var members = CurrentMembers(connection, transaction);
        var voter = entry.Fields["voter"];
        if (proposal is not { } open || !members.Contains(voter))
            return;
        connection.Execute("INSERT OR IGNORE INTO governance_votes(proposal_idx, voter, idx) VALUES (@proposalIndex, @voter, @Index)",
            new { proposalIndex, voter, entry.Index }, transaction);
        var votes = connection.Query<string>("SELECT voter FROM governance_votes WHERE proposal_idx = @proposalIndex", new { proposalIndex }, transaction)
            .Count(members.Contains);
        if (votes <= members.Count / 2)
            return;

        connection.Execute("UPDATE governance_proposals SET effective_idx = @Index WHERE idx = @proposalIndex", new { entry.Index, proposalIndex }, transaction);
        if (open.Action == "admit")
        {
            connection.Execute("""
                INSERT INTO admitted_nodes(node_id, fingerprint, organization, admitted_idx, removed_idx) VALUES (@NodeId, @Fingerprint, @Organization, @Index, NULL)
                ON CONFLICT(node_id) DO UPDATE SET fingerprint = excluded.fingerprint, organization = excluded.organization, admitted_idx = excluded.admitted_idx, removed_idx = NULL
                """, new { open.NodeId, open.Fingerprint, open.Organization, entry.Index }, transaction);
        }
        else
        {
            connection.Execute("""
                INSERT INTO admitted_nodes(node_id, removed_idx) VALUES (@NodeId, @Index)
                ON CONFLICT(node_id) DO UPDATE SET removed_idx = excluded.removed_idx
                """, new { open.NodeId, entry.Index }, transaction);
        }
    }

    private HashSet<string> CurrentMembers(SqliteConnection connection, SqliteTransaction transaction)
    {
        var members = new HashSet<string>(foundingMembers, StringComparer.Ordinal);
        foreach (var (nodeId, removed) in connection.Query<(string, bool)>("SELECT node_id, removed FROM members", transaction: transaction))
        {
            if (removed)
                members.Remove(nodeId);
            else
                members.Add(nodeId);
        }

        foreach (var nodeId in connection.Query<string>("SELECT node_id FROM admitted_nodes WHERE removed_idx IS NOT NULL", transaction: transaction))
            members.Remove(nodeId);
        return members;
    }
}
