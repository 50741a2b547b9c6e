using System.Globalization;
using System.Net;
using System.Text.Json;
using Health.FhirGateway.Errors;
using Health.Ledger.Checkpoints;
using Health.Ledger.Entries;
using Health.Ledger.Replication;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using JsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;

namespace Health.FhirGateway.LedgerApi;

/// <summary>
/// The ledger's HTTP API for operators, auditors' tools and tests: append (loopback only for now),
/// entries, receipts, checkpoints, consistency proofs and cluster status.
/// </summary>
public static class LedgerEndpoints
{
    private const int MaxAppendBody = 64 * 1024;
    private const int MaxForwardedBody = 32 * 1024 * 1024;
    private const int MaxPage = 1000;

    /// <summary>Maps the ledger routes under <c>/ledger</c> and the members-only replication route.</summary>
    public static IEndpointRouteBuilder MapLedgerApi(this IEndpointRouteBuilder app)
    {
        var ledger = app.MapGroup("/ledger");
        // Appends come from this machine only and carry no token, so the authentication,
        // authorization, rate-limit and portal-header middleware have nothing to do for them: the
        // endpoint runs at routing (NodeHost puts routing after the error handlers). Its body limit
        // is applied at routing too.
        ledger.MapPost("/entries", AppendAsync).WithMetadata(new RequestSizeLimitAttribute(MaxAppendBody)).ShortCircuit();
        ledger.MapGet("/entries", ListEntries);
        ledger.MapGet("/entries/{index:long}", GetEntry);
        ledger.MapGet("/entries/{index:long}/receipt", GetReceipt);
        ledger.MapGet("/checkpoints/latest", GetLatestCheckpoint);
        ledger.MapGet("/consistency", GetConsistency);
        ledger.MapGet("/status", (LedgerNode node) => TypedResults.Ok(node.Status()));
        ledger.MapGet("/keys", (LedgerNode node) => TypedResults.Ok(new Dictionary<string, string> { [node.SigningKey.KeyId] = node.SigningKey.PublicKeyPem() }));
        ledger.MapPost("/members", AddMemberAsync).WithMetadata(new RequestSizeLimitAttribute(MaxAppendBody));
        ledger.MapDelete("/members/{nodeId}", RemoveMemberAsync);
        app.MapPost(LedgerNode.ReplicatePath, AcceptForwardedAsync).WithMetadata(new RequestSizeLimitAttribute(MaxForwardedBody));
        app.MapGet(LedgerNode.SnapshotPath + "{index:long}-{term:long}", ServeSnapshot);
        app.MapPost(LedgerNode.MembershipPath, AcceptForwardedMembershipAsync).WithMetadata(new RequestSizeLimitAttribute(MaxAppendBody));
        app.MapDelete(LedgerNode.MembershipPath, AcceptForwardedMembershipAsync).WithMetadata(new RequestSizeLimitAttribute(MaxAppendBody));
        return app;
    }

    private static async Task<IResult> AppendAsync(HttpContext context, LedgerNode node, EntryKindRegistry kinds, IOptions<JsonOptions> json)
    {
        RequireLoopback(context);
        var command = await ReadCommandAsync(context).ConfigureAwait(false);
        if (kinds.ValidateClientCommand(command) is { } problem)
            throw RequestFailure.Invalid(problem);
        var result = await node.AppendAsync(command, context.RequestAborted).ConfigureAwait(false);
        context.Response.Headers["X-Ledger-Index"] = result.Index.ToString(CultureInfo.InvariantCulture);
        var answer = new AppendedDto(result.Index, Convert.ToHexStringLower(result.LeafHash));
        return new CreatedJson($"/ledger/entries/{result.Index}", JsonSerializer.SerializeToUtf8Bytes(answer, json.Value.SerializerOptions));
    }

    private static async Task<LedgerCommand> ReadCommandAsync(HttpContext context)
    {
        if (!context.Request.HasJsonContentType())
            throw new RequestFailure(StatusCodes.Status415UnsupportedMediaType, Hl7.Fhir.Model.OperationOutcome.IssueType.NotSupported, "Send the entry as application/json.");
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException)
        {
            throw RequestFailure.Invalid("The body is not valid JSON.");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("kind", out var kind) || kind.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("fields", out var fields) || fields.ValueKind != JsonValueKind.Object)
                throw RequestFailure.Invalid("The body must be an object with a string 'kind' and an object 'fields'.");
            var values = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var field in fields.EnumerateObject())
            {
                if (field.Value.ValueKind != JsonValueKind.String)
                    throw RequestFailure.Invalid("Every field value must be a string.");
                if (!values.TryAdd(field.Name, field.Value.GetString()!))
                    throw RequestFailure.Invalid("A field appears twice.");
            }

            return new LedgerCommand(kind.GetString()!, values);
        }
    }

    private static Ok<EntryDto> GetEntry(long index, LedgerNode node)
    {
        var entry = node.Store.ReadEntry(index) ?? throw RequestFailure.NotFound($"No entry has index {index}.");
        return TypedResults.Ok(EntryDto.From(entry));
    }

    private static Ok<EntryPageDto> ListEntries(LedgerNode node, long from = 1, int count = 100)
    {
        if (from < 1 || count < 1 || count > MaxPage)
            throw RequestFailure.Invalid($"Use from >= 1 and 1 <= count <= {MaxPage}.");
        var entries = node.Store.ReadEntryBytes(from, count).Select(b => EntryDto.From(LedgerEntry.FromCanonicalBytes(b))).ToList();
        return TypedResults.Ok(new EntryPageDto(entries, node.Tree.Size));
    }

    private static Results<Ok<ReceiptDto>, StatusCodeHttpResult> GetReceipt(long index, LedgerNode node, HttpContext context)
    {
        Receipt? receipt;
        try
        {
            receipt = node.GetReceipt(index);
        }
        catch (ArgumentOutOfRangeException)
        {
            throw RequestFailure.NotFound($"No entry has index {index}.");
        }

        if (receipt is null)
        {
            context.Response.Headers.RetryAfter = "1";
            throw new RequestFailure(StatusCodes.Status503ServiceUnavailable, Hl7.Fhir.Model.OperationOutcome.IssueType.Transient,
                $"No checkpoint covers entry {index} yet; retry shortly.");
        }

        return TypedResults.Ok(ReceiptDto.From(receipt));
    }

    private static Ok<CheckpointDto> GetLatestCheckpoint(LedgerNode node)
    {
        var index = node.Store.FindLatestCheckpoint() ?? throw RequestFailure.NotFound("No checkpoint has been recorded yet.");
        var entry = node.Store.ReadEntry(index)!;
        return TypedResults.Ok(CheckpointDto.From(index, SignedCheckpoint.FromFields(entry.Fields)));
    }

    private static Ok<ConsistencyDto> GetConsistency(LedgerNode node, long from, long to)
    {
        var size = node.Tree.Size;
        if (from < 1 || from > to || to > size)
            throw RequestFailure.Invalid($"Use 1 <= from <= to <= {size} (the current tree size).");
        var proof = node.Tree.ProveConsistency(from, to);
        return TypedResults.Ok(new ConsistencyDto(from, to, Convert.ToHexStringLower(node.Tree.Root(from)), Convert.ToHexStringLower(node.Tree.Root(to)),
            proof.Path.Select(Convert.ToHexStringLower).ToList()));
    }

    private static async Task<NoContent> AcceptForwardedAsync(HttpContext context, LedgerNode node)
    {
        RequireMember(context, node);
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
        try
        {
            await node.AcceptForwardedBatchAsync(buffer.ToArray(), context.RequestAborted).ConfigureAwait(false);
        }
        catch (FormatException)
        {
            throw RequestFailure.Invalid("The body is not an encoded batch.");
        }

        return TypedResults.NoContent();
    }

    // A member behind the compacted log fetches the snapshot the leader's Raft message referred to.
    private static IResult ServeSnapshot(HttpContext context, LedgerNode node, long index, long term)
    {
        RequireMember(context, node);
        if (node.FindSnapshot(index, term) is not { } file)
            throw RequestFailure.NotFound("This node does not hold that snapshot (a newer one may have replaced it).");
        return TypedResults.PhysicalFile(file.FullName, "application/octet-stream", enableRangeProcessing: true);
    }

    private static async Task<Ok<LedgerStatus>> AddMemberAsync(HttpContext context, LedgerNode node, MemberDto member)
    {
        RequireLoopback(context);
        LedgerMember parsed;
        try
        {
            parsed = LedgerMember.Parse($"{member.NodeId}={member.RaftEndPoint}={member.HttpUrl}");
        }
        catch (FormatException e)
        {
            throw RequestFailure.Invalid(e.Message);
        }

        if (!node.Admission.IsAdmitted(parsed.NodeId))
            throw new RequestFailure(StatusCodes.Status409Conflict, Hl7.Fhir.Model.OperationOutcome.IssueType.BusinessRule,
                $"{parsed.NodeId} is not admitted to the consortium: propose its admission and have a majority of members approve it first.");
        if (node.Members.Any(m => m.NodeId == parsed.NodeId || Equals(m.RaftEndPoint, parsed.RaftEndPoint)))
            throw new RequestFailure(StatusCodes.Status409Conflict, Hl7.Fhir.Model.OperationOutcome.IssueType.Duplicate, $"{parsed.NodeId} or its Raft address is already a member.");
        await node.AddMemberAsync(parsed, context.RequestAborted).ConfigureAwait(false);
        return TypedResults.Ok(node.Status());
    }

    private static async Task<NoContent> RemoveMemberAsync(HttpContext context, LedgerNode node, string nodeId)
    {
        RequireLoopback(context);
        if (node.Members.All(m => m.NodeId != nodeId))
            throw RequestFailure.NotFound($"No member is called {nodeId}.");
        await node.RemoveMemberAsync(nodeId, context.RequestAborted).ConfigureAwait(false);
        return TypedResults.NoContent();
    }

    private static async Task<NoContent> AcceptForwardedMembershipAsync(HttpContext context, LedgerNode node)
    {
        RequireMember(context, node);
        using var reader = new StreamReader(context.Request.Body);
        LedgerMember member;
        try
        {
            member = LedgerMember.Parse(await reader.ReadToEndAsync(context.RequestAborted).ConfigureAwait(false));
        }
        catch (FormatException e)
        {
            throw RequestFailure.Invalid(e.Message);
        }

        if (HttpMethods.IsDelete(context.Request.Method))
            await node.RemoveMemberAsync(member.NodeId, context.RequestAborted).ConfigureAwait(false);
        else
            await node.AddMemberAsync(member, context.RequestAborted).ConfigureAwait(false);
        return TypedResults.NoContent();
    }

    // Member-to-member calls: with TLS, the caller's client certificate must be the consortium's and
    // name a node admitted now; a node running without TLS (development) takes them from this machine only.
    private static void RequireMember(HttpContext context, LedgerNode node)
    {
        if (node.Identity is null)
        {
            RequireLoopback(context);
            return;
        }

        if (context.Connection.ClientCertificate is not { } certificate || !node.IsAdmittedPeer(certificate))
            throw RequestFailure.Forbidden("Only admitted consortium members may call this, with their node certificate.");
    }

    // Operator actions without a token (raw appends, Raft membership) are taken from this machine only.
    private static void RequireLoopback(HttpContext context)
    {
        if (context.Connection.RemoteIpAddress is not { } address || !IPAddress.IsLoopback(address))
            throw RequestFailure.Forbidden("Appends are accepted from this machine only.");
    }
}
