using Dapper;
using Health.Ledger.Storage;

namespace Health.Ledger.Governance;

/// <summary>Whether a node may take part, from what <see cref="GovernanceProjection"/> keeps. Safe on any thread.</summary>
public sealed class Admission(LedgerStore store, IReadOnlyCollection<string> foundingMembers)
{
    /// <summary>
    /// Whether a node with this id and certificate fingerprint is admitted now: a founding member
    /// not removed, or a node whose admission took effect for this certificate and was not removed.
    /// </summary>
    public bool IsAdmitted(string nodeId, string certificateSha256)
    {
        using var connection = store.OpenReader();
        var row = connection.QuerySingleOrDefault<(string? Fingerprint, long? AdmittedIdx, long? RemovedIdx)?>(
            "SELECT fingerprint, admitted_idx, removed_idx FROM admitted_nodes WHERE node_id = @nodeId", new { nodeId });
        var removedAsMember = connection.ExecuteScalar<long>("SELECT COUNT(*) FROM members WHERE node_id = @nodeId AND removed = 1", new { nodeId }) > 0;
        if (removedAsMember || row is { RemovedIdx: not null })
            return false;
        if (row is { AdmittedIdx: not null, Fingerprint: { } pinned })
            return string.Equals(pinned, certificateSha256, StringComparison.OrdinalIgnoreCase);
        return foundingMembers.Contains(nodeId);
    }

    /// <summary>Whether a node id has been admitted (by a founding configuration or a vote) and not removed, whatever its certificate.</summary>
    public bool IsAdmitted(string nodeId)
    {
        using var connection = store.OpenReader();
        var row = connection.QuerySingleOrDefault<(long? AdmittedIdx, long? RemovedIdx)?>(
            "SELECT admitted_idx, removed_idx FROM admitted_nodes WHERE node_id = @nodeId", new { nodeId });
        return row is { RemovedIdx: null, AdmittedIdx: not null } || (row is null or { RemovedIdx: null } && foundingMembers.Contains(nodeId));
    }

    /// <summary>Whether a node, or the organisation it speaks for, has been removed from the consortium.</summary>
    public bool IsRemoved(string nodeOrOrganization)
    {
        // Asked on every gated read: a kept statement.
        return store.Query(connection => connection.Scalar<long>(
            "SELECT EXISTS(SELECT 1 FROM admitted_nodes WHERE (node_id = @nodeOrOrganization OR organization = @nodeOrOrganization) AND removed_idx IS NOT NULL)",
            ("@nodeOrOrganization", nodeOrOrganization)) != 0);
    }

    /// <summary>Every proposal with its votes, newest first.</summary>
    public IReadOnlyList<Proposal> Proposals()
    {
        using var connection = store.OpenReader();
        var votes = connection.Query<(long ProposalIdx, string Voter)>("SELECT proposal_idx, voter FROM governance_votes ORDER BY idx")
            .GroupBy(v => v.ProposalIdx).ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.Select(v => v.Voter).ToList());
        return connection.Query<(long Idx, string Action, string NodeId, string? Organization, string? Fingerprint, long? EffectiveIdx)>(
                "SELECT idx, action, node_id, organization, fingerprint, effective_idx FROM governance_proposals ORDER BY idx DESC")
            .Select(p => new Proposal(p.Idx, p.Action, p.NodeId, p.Organization, p.Fingerprint, votes.GetValueOrDefault(p.Idx, []), p.EffectiveIdx))
            .ToList();
    }
}
