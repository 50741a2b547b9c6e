using Health.Consent;
using Health.Consent.Projection;
using Health.FhirGateway.Access;
using Health.FhirGateway.Audit;
using Health.FhirGateway.Auth;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Federation;
using Health.FhirGateway.Fhir;
using Health.FhirGateway.Records;
using Health.FhirGateway.LedgerApi;
using Health.FhirGateway.Operations;
using Health.FhirGateway.Portal;
using Health.Ledger.Entries;
using Health.Ledger.Replication;
using Hl7.Fhir.Model;
using OpenTelemetry.Metrics;

namespace Health.FhirGateway.Hosting;

/// <summary>Builds and runs one provider node: the ledger member and its HTTP API.</summary>
public static partial class NodeHost
{
    private static readonly string[] AspNetCoreMeters =
    [
        "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Server.Kestrel",
        "Microsoft.AspNetCore.Diagnostics",
        "Microsoft.AspNetCore.RateLimiting",
        "Microsoft.AspNetCore.Authentication",
        "Microsoft.AspNetCore.Authorization",
    ];

    /// <summary>Starts a node; it runs until the returned application is stopped.</summary>
    public static async Task<WebApplication> StartAsync(NodeSettings settings, CancellationToken token, Action<ILoggingBuilder>? logging = null)
    {
        var dataLock = LockDataDirectory(settings.DataDirectory);
        // Configuration comes from the command line, the environment and the node's config file
        // (NodeConfig), read once. Reloading on change would watch the working directory, and
        // everything under it, for edits: a node started in or above its data directory (the demo,
        // a service run from /var/lib) would handle an event for each of its own writes.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
        builder.WebHost.UseUrls(settings.HttpUrl.ToString());
        if (settings.Identity is not null)
            builder.WebHost.UseKestrelHttpsConfiguration();

        // A request's code runs on the thread that completed its socket read, and its answer is
        // sent from the thread that wrote it, rather than each being handed to another thread-pool
        // item: two thread switches fewer per request (docs/PERFORMANCE.md, "Two thread switches
        // fewer per request"). Kestrel calls this unsafe because that thread would be the socket
        // event thread if the runtime ran socket completions inline; it does not unless
        // DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS is 1, so the thread is a thread-pool worker
        // and a request that blocks holds one worker, as it would otherwise.
        var socketCompletionsInline = Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") == "1";
        builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = !socketCompletionsInline);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = 1024 * 1024;

            // Which server software answers is of use to an attacker only.
            kestrel.AddServerHeader = false;
            if (settings.Identity is { } identity)
            {
                // Clinicians and patients connect without a client certificate; member-to-member
                // routes check the one a peer presents.
                kestrel.ConfigureHttpsDefaults(https =>
                {
                    https.ServerCertificate = identity.Certificate;
                    https.ClientCertificateMode = Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.AllowCertificate;
                    https.AllowAnyClientCertificate();
                });
            }
        });
        builder.Logging.ClearProviders();
        if (settings.JsonLogs)
        {
            // One JSON object per line, with the request id and trace id of each request's scope.
            builder.Logging.AddJsonConsole(o => o.IncludeScopes = true);
        }
        else
        {
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        }

        builder.Logging.AddFilter("DotNext", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("System.Net.Http", LogLevel.Warning);
        builder.Logging.AddFilter("Polly", LogLevel.Warning);

        // A host that cannot start is reported by the command in one line; its stack trace is not news to an operator.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);
        logging?.Invoke(builder.Logging);

        var kinds = new EntryKindRegistry();
        ConsentEntryKinds.RegisterIn(kinds);
        builder.Services.AddSingleton(kinds);
        builder.Services.AddSingleton<IHostLifetime, CommandLineLifetime>();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        AddRecords(builder.Services, settings);
        builder.Services.AddNodeAuthentication(builder.Configuration, DevTokenIssuer.LoadOrCreate(settings.DevIssuerKeyFile ?? Path.Combine(settings.DataDirectory, "keys", "dev-issuer.pem")));
        builder.Services.AddPortal();
        builder.Services.AddClientRateLimits(settings.RateLimitPerSecond);
        builder.Services.AddExceptionHandler<OperationOutcomeHandler>();
        builder.Services.AddProblemDetails();
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase);

        // The ledger node needs the host's logging, so it starts after Build; the container then
        // owns it and disposes it with the application.
        LedgerNode? node = null;
        builder.Services.AddSingleton(_ => node ?? throw new InvalidOperationException("The ledger node has not started."));
        builder.Services.AddSingleton(sp => new ConsentLedger(sp.GetRequiredService<LedgerNode>().Store));
        builder.Services.AddSingleton<AccessGate>();
        builder.Services.AddSingleton<ConsentRecorder>();
        builder.Services.AddSingleton<FederatedRecords>();
        builder.Services.AddSingleton<GatewayMetrics>();
        // ASP.NET Core's meters an operator watches: requests by route, connections and TLS
        // handshakes, handled exceptions, rate-limit rejections, sign-ins and authorization. Not its
        // routing match attempts (the request duration carries the route) nor its memory-pool
        // counters, which are recorded on every request and describe Kestrel's internals.
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(LedgerNode.MeterName, GatewayMetrics.MeterName)
            .AddMeter(AspNetCoreMeters)
            .AddPrometheusExporter());
        builder.Services.AddSingleton<AuditExporter>();
        builder.Services.AddSingleton(sp => new AuditExports(sp.GetRequiredService<AuditExporter>(), Path.Combine(settings.DataDirectory, "exports"), sp.GetRequiredService<ILogger<AuditExports>>()));
        builder.Services.AddHttpClient(FederatedRecords.ClientName)
            .ConfigurePrimaryHttpMessageHandler(sp => sp.GetRequiredService<LedgerNode>().CreatePeerHandler())
            .AddStandardResilienceHandler(options =>
            {
                options.AttemptTimeout.Timeout = TimeSpan.FromSeconds(3);
                options.TotalRequestTimeout.Timeout = TimeSpan.FromSeconds(8);
                options.Retry.MaxRetryAttempts = 2;
                options.Retry.Delay = TimeSpan.FromMilliseconds(100);
            });

        var app = builder.Build();
        var loggerFactory = app.Services.GetRequiredService<ILoggerFactory>();
        var records = app.Services.GetRequiredService<RecordStore>();
        if (records.IndexNeedsRebuild)
            LogIndexRebuilt(loggerFactory.CreateLogger<RecordStore>(), records.RebuildIndex(app.Services.GetRequiredService<SearchIndexer>()));
        node = await LedgerNode.StartAsync(settings.ToLedgerOptions(), [new ConsentProjection()], loggerFactory, token).ConfigureAwait(false);
        app.Services.GetRequiredService<LedgerNode>();

        app.UseExceptionHandler();
        app.UseStatusCodePages(async context =>
        {
            var status = context.HttpContext.Response.StatusCode;
            var type = status == StatusCodes.Status404NotFound ? OperationOutcome.IssueType.NotFound : OperationOutcome.IssueType.NotSupported;
            await OperationOutcomeHandler.WriteAsync(context.HttpContext, status, type, $"The request was not handled ({status}).", context.HttpContext.RequestAborted).ConfigureAwait(false);
        });

        // Routing after the error handlers, so that an endpoint answered at routing (an append,
        // LedgerEndpoints) still has its failures written as OperationOutcomes.
        app.UseRouting();
        app.UsePortalSecurityHeaders();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRateLimiter();
        app.MapGet("/healthz", Liveness);
        app.MapGet("/readyz", Readiness);
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapLedgerApi();
        app.MapAuditEventSearch();
        app.MapFhirApi();
        app.MapAccessApi();
        app.MapGovernanceApi();
        app.MapCustodianApi();
        app.MapAuditApi();
        app.MapAdminApi(settings.DataDirectory);
        app.MapPortal();
        app.Lifetime.ApplicationStopped.Register(dataLock.Dispose);
        await app.StartAsync(token).ConfigureAwait(false);
        return app;
    }

    /// <summary>Takes the data directory's lock: one node per data directory (a second process on it would corrupt it), and no offline tool beside a running node.</summary>
    internal static FileStream LockDataDirectory(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        try
        {
            return new FileStream(Path.Combine(dataDirectory, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            throw new InvalidOperationException($"The data directory {dataDirectory} is in use by another node.");
        }
    }

    // Alive unless the Raft log has failed: only a restart mends that, which is what a supervisor
    // does for a process that reports itself not alive.
    private static IResult Liveness(LedgerNode node)
        => node.LogFailure is { } failure
            ? Results.Json(new { status = "failed", problems = new[] { RaftLogFailed(failure) } }, statusCode: StatusCodes.Status503ServiceUnavailable)
            : Results.Ok(new { status = "up" });

    private static string RaftLogFailed(string failure) => $"this node's Raft log failed ({failure}): restart the node";

    // Ready: a leader is known, everything committed is applied here, and the record store answers.
    private static IResult Readiness(LedgerNode node, RecordStore store)
    {
        var status = node.Status();
        var problems = new List<string>();
        (long Resources, long Patients) records = default;
        if (status.LeaderId is null)
            problems.Add("no leader is known");
        if (status.AppliedIndex < status.CommitIndex)
            problems.Add($"applied {status.AppliedIndex} of {status.CommitIndex} committed entries");
        if (node.LogFailure is { } failure)
            problems.Add(RaftLogFailed(failure));
        if (status.DivergedAt is { } diverged)
            problems.Add($"this node's ledger does not match the group's checkpoint at ledger index {diverged} (log event 1101): rebuild it from the group: stop it, run `health-node rebuild-ledger`, start it");
        try
        {
            records = store.Counts();
        }
        catch (Microsoft.Data.Sqlite.SqliteException)
        {
            problems.Add("the record store cannot be opened");
        }

        return problems.Count == 0
            ? Results.Ok(new { status = "ready", status.CommitIndex, status.AppliedIndex, records.Resources, records.Patients })
            : Results.Json(new { status = "not ready", problems }, statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    private static void AddRecords(IServiceCollection services, NodeSettings settings)
    {
        var keys = NodeKeys.Load(
            Path.Combine(settings.DataDirectory, "keys", "master.key"),
            settings.PseudonymKeyFile ?? Path.Combine(settings.DataDirectory, "keys", "pseudonym.key"));
        Directory.CreateDirectory(Path.Combine(settings.DataDirectory, "records"));
        services.AddSingleton(TimeProvider.System);
        var store = new RecordStore(Path.Combine(settings.DataDirectory, "records", "records.db"), keys.MasterKey);
        services.AddSingleton(store);
        services.AddSingleton(new SearchIndexer(store.IndexKey));
        services.AddSingleton(new PatientPseudonyms(keys.PseudonymKey));
        services.AddSingleton(new BreakGlassReasons(keys.PseudonymKey));
        services.AddSingleton<TransactionProcessor>();
    }

    [LoggerMessage(EventId = 6001, Level = LogLevel.Warning, Message = "The record store was written by an earlier index layout; its search index was rebuilt from {Resources} current resources")]
    private static partial void LogIndexRebuilt(ILogger logger, int resources);
}
