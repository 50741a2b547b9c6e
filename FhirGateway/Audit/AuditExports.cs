using System.Collections.Concurrent;

namespace Health.FhirGateway.Audit;

/// <summary>
/// Bulk Data style export jobs: each runs in the background into its own folder under the node's
/// data directory; its status is running, complete (with the files) or failed.
/// </summary>
public sealed partial class AuditExports(AuditExporter exporter, string root, ILogger<AuditExports> logger)
{
    private readonly ConcurrentDictionary<string, Job> jobs = new(StringComparer.Ordinal);

    /// <summary>Starts an export; returns its id.</summary>
    public string Start(AuditFilter filter, string request)
    {
        var id = Guid.NewGuid().ToString("N");
        var folder = Path.Combine(root, id);
        var job = new Job(folder, request, DateTimeOffset.UtcNow);
        jobs[id] = job;
        job.Work = Task.Run(async () =>
        {
            try
            {
                job.Manifest = await exporter.WriteAsync(folder, filter, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                job.Error = e.Message;
                LogExportFailed(logger, id, e.GetType().Name);
            }
        });
        return id;
    }

    /// <summary>The job, or null when unknown.</summary>
    public Job? Find(string id) => jobs.GetValueOrDefault(id);

    /// <summary>One export.</summary>
    /// <param name="Folder">Where its files are.</param>
    /// <param name="Request">The kick-off URL.</param>
    /// <param name="Started">When it was asked for.</param>
    public sealed record Job(string Folder, string Request, DateTimeOffset Started)
    {
        /// <summary>The running export.</summary>
        public Task Work { get; set; } = Task.CompletedTask;

        /// <summary>The manifest once complete.</summary>
        public AuditManifest? Manifest { get; set; }

        /// <summary>Why it failed, or null.</summary>
        public string? Error { get; set; }
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Warning, Message = "Audit export {ExportId} failed ({Failure})")]
    private static partial void LogExportFailed(ILogger logger, string exportId, string failure);
}
