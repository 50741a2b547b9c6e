using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Records;
using Health.Ledger.Replication;

namespace Health.FhirGateway.Operations;

/// <summary>Operator actions on a running node: <c>POST /admin/backup</c> streams an online backup.</summary>
public static class AdminEndpoints
{
    /// <summary>Maps the routes.</summary>
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app, string dataDirectory)
    {
        app.MapPost("/admin/backup", async (HttpContext context, LedgerNode node, RecordStore store) =>
        {
            var access = SmartAccess.From(context.User);
            access.RequireRole("operator");
            if (access.Organization != node.NodeId)
                throw RequestFailure.Forbidden($"Backups of {node.NodeId} need an operator token of {node.NodeId} (org claim).");
            var scratch = Path.Combine(dataDirectory, "backup-scratch", Guid.NewGuid().ToString("N"));
            try
            {
                // The zip is made on disk first: its central directory is written synchronously.
                var zip = Path.Combine(Directory.CreateDirectory(scratch).FullName, "backup.zip");
                var file = File.Create(zip);
                await using (file.ConfigureAwait(false))
                    await NodeBackup.WriteAsync(node, store, file, scratch, context.RequestAborted).ConfigureAwait(false);
                context.Response.ContentType = "application/zip";
                context.Response.Headers.ContentDisposition = $"attachment; filename=\"{node.NodeId}-backup.zip\"";
                await context.Response.SendFileAsync(zip, context.RequestAborted).ConfigureAwait(false);
            }
            finally
            {
                Directory.Delete(scratch, recursive: true);
            }
        }).RequireAuthorization();
        return app;
    }
}
