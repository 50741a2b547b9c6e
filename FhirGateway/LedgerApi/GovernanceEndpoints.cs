using System.Globalization;
using System.Text.RegularExpressions;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;
using Health.Ledger.Entries;
using Health.Ledger.Governance;
using Health.Ledger.Replication;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Health.FhirGateway.LedgerApi;

/// <summary>
/// Consortium governance: a member's operator proposes to admit or remove a node, and each member's
/// operator approves through their own node; the change takes effect at the vote that makes a
/// majority of the current members. Operators act with an operator token naming their node as
/// organisation.
/// </summary>
public static partial class GovernanceEndpoints
{
    /// <summary>Maps the routes.</summary>
    public static IEndpointRouteBuilder MapGovernanceApi(this IEndpointRouteBuilder app)
    {
        var governance = app.MapGroup("/ledger/governance").RequireAuthorization();
        governance.MapGet("/proposals", (LedgerNode node) => TypedResults.Ok(node.Admission.Proposals()));
        governance.MapPost("/proposals", ProposeAsync).WithMetadata(new RequestSizeLimitAttribute(16 * 1024));
        governance.MapPost("/proposals/{index:long}/votes", VoteAsync);
        return app;
    }

    /// <summary>A proposal as posted.</summary>
    /// <param name="Action">admit or remove.</param>
    /// <param name="NodeId">The node concerned.</param>
    /// <param name="Organization">Its organisation (admit).</param>
    /// <param name="CertificateSha256">SHA-256 of its certificate's DER bytes, hex (admit).</param>
    /// <param name="Reason">Why (remove), optional.</param>
    public sealed record ProposalDto(string? Action, string? NodeId, string? Organization, string? CertificateSha256, string? Reason);

    private static async Task<Created<Proposal>> ProposeAsync(HttpContext context, LedgerNode node, ProposalDto proposal)
    {
        RequireOwnOperator(context, node);
        if (proposal.NodeId is not { } nodeId || !NodeIdPattern().IsMatch(nodeId))
            throw RequestFailure.Invalid("nodeId must be 1-64 letters, digits, '.', '_' or '-'.");
        var fields = new Dictionary<string, string> { ["nodeId"] = nodeId };
        EntryKind kind;
        switch (proposal.Action)
        {
            case "admit":
                if (proposal.CertificateSha256 is not { } fingerprint || !FingerprintPattern().IsMatch(fingerprint))
                    throw RequestFailure.Invalid("certificateSha256 must be the 64 hex digits of SHA-256 over the node certificate's DER bytes.");
                if (string.IsNullOrWhiteSpace(proposal.Organization) || proposal.Organization.Length > 200)
                    throw RequestFailure.Invalid("organization is required (at most 200 characters).");
                (kind, fields["organization"], fields["certificateSha256"]) = (LedgerEntryKinds.NodeAdmitted, proposal.Organization, fingerprint.ToLowerInvariant());
                break;
            case "remove":
                kind = LedgerEntryKinds.NodeRemoved;
                if (proposal.Reason is { Length: > 0 and <= 500 } reason)
                    fields["reason"] = reason;
                break;
            default:
                throw RequestFailure.Invalid("action must be admit or remove.");
        }

        var appended = await node.AppendAsync(new LedgerCommand(kind.Name, fields), context.RequestAborted).ConfigureAwait(false);
        return TypedResults.Created($"/ledger/governance/proposals/{appended.Index}", Find(node, appended.Index));
    }

    private static async Task<Ok<Proposal>> VoteAsync(HttpContext context, LedgerNode node, long index)
    {
        RequireOwnOperator(context, node);
        if (node.Admission.Proposals().FirstOrDefault(p => p.Index == index) is not { } proposal)
            throw RequestFailure.NotFound($"No proposal at ledger index {index}.");
        if (proposal.EffectiveIndex is not null)
            throw new RequestFailure(StatusCodes.Status409Conflict, Hl7.Fhir.Model.OperationOutcome.IssueType.Conflict, "The proposal has already taken effect.");
        await node.AppendAsync(new LedgerCommand(LedgerEntryKinds.GovernanceVote.Name, new Dictionary<string, string>
        {
            ["proposal"] = index.ToString(CultureInfo.InvariantCulture),
            ["voter"] = node.NodeId,
        }), context.RequestAborted).ConfigureAwait(false);
        return TypedResults.Ok(Find(node, index));
    }

    private static Proposal Find(LedgerNode node, long index) => node.Admission.Proposals().Single(p => p.Index == index);

    // A vote is cast for the node it is sent to, so only that node's own operators may cast it.
    private static void RequireOwnOperator(HttpContext context, LedgerNode node)
    {
        var access = SmartAccess.From(context.User);
        access.RequireRole("operator");
        if (access.Organization != node.NodeId)
            throw RequestFailure.Forbidden($"Governance actions at {node.NodeId} need an operator token of {node.NodeId} (org claim).");
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex NodeIdPattern();

    [GeneratedRegex("^[0-9a-fA-F]{64}$")]
    private static partial Regex FingerprintPattern();
}
