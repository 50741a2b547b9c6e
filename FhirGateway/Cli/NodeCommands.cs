using System.CommandLine;
using Health.FhirGateway.Hosting;
using Health.Ledger.Replication;

namespace Health.FhirGateway.Cli;

/// <summary>The <c>health-node</c> command line.</summary>
internal static class NodeCommands
{
    public static RootCommand Create()
    {
        var root = new RootCommand("health-node: a provider node of the Health ledger consortium.");
        root.Subcommands.Add(RunCommand());
        root.Subcommands.Add(DemoCommand());
        root.Subcommands.Add(TokenCommand());
        root.Subcommands.Add(CertificateCommands.Create());
        root.Subcommands.Add(AuditCommands.Create());
        root.Subcommands.Add(StatusCommand.Create());
        root.Subcommands.Add(LoadCommand());
        root.Subcommands.Add(InitCommand.Create());
        root.Subcommands.Add(KeyCommands.RotateMasterKey());
        root.Subcommands.Add(RebuildLedgerCommand.Create());
        foreach (var command in BackupCommands.Create())
            root.Subcommands.Add(command);
        return root;
    }

    private static Command RunCommand()
    {
        var config = new Option<FileInfo>("--config") { Description = "A node.json made by `health-node init`; HEALTH_* environment variables override it, options override both." };
        var nodeId = new Option<string>("--node-id") { Description = "This node's id (one of --member)." };
        var http = new Option<string>("--http") { Description = "HTTP URL to listen on, for example http://127.0.0.1:8081." };
        var data = new Option<DirectoryInfo>("--data") { Description = "The node's data directory." };
        var members = new Option<string[]>("--member")
        {
            Description = "A voting member, id=ip:raftPort=httpUrl; give every member, this node included.",
            AllowMultipleArgumentsPerToken = true,
        };
        var snapshotInterval = new Option<long>("--snapshot-interval")
        {
            Description = "Raft entries between snapshots of the ledger projection; smaller keeps the write-ahead log shorter.",
            DefaultValueFactory = _ => 2048,
        };
        var electionTimeout = new Option<int>("--election-timeout")
        {
            Description = "Shortest election timeout in ms (elections draw from it to twice it; Raft requests time out at four fifths of it). Raise it for members far apart: a tenth of it should cover a round trip and a disk flush.",
            DefaultValueFactory = _ => 1000,
        };
        var join = new Option<bool>("--join")
        {
            Description = "Join a running group: start without a Raft configuration and wait until an operator adds this node (POST /ledger/members on any member).",
        };
        var pseudonymKey = new Option<FileInfo>("--pseudonym-key")
        {
            Description = "The consortium's shared pseudonym key file (base64, 32 bytes); made on first start when missing.",
        };
        var devIssuerKey = new Option<FileInfo>("--dev-issuer-key")
        {
            Description = "Key file of the dev token issuer whose tokens this node accepts (demo and tests); made on first start when missing.",
        };
        var tlsCertificate = new Option<FileInfo>("--tls-cert") { Description = "This node's consortium certificate (PEM, from `health-node certs node`); with --tls-key and --tls-ca, Raft and member-to-member HTTP are mutual TLS and --http must be https." };
        var tlsKey = new Option<FileInfo>("--tls-key") { Description = "The private key of --tls-cert (PEM)." };
        var tlsAuthority = new Option<FileInfo>("--tls-ca") { Description = "The consortium CA certificate (PEM) every member's certificate must chain to." };
        var logFormat = new Option<string>("--log-format") { Description = "plain (one line per event) or json (one JSON object per line, with request ids).", DefaultValueFactory = _ => "plain" };
        logFormat.AcceptOnlyFromAmong("plain", "json");
        var rateLimit = new Option<int>("--rate-limit") { Description = "Requests a second one client (token subject, else address) may make to /fhir and /portal; 0 turns the limit off.", DefaultValueFactory = _ => 5000 };
        var command = new Command("run", "Run one provider node until stopped (Ctrl+C or SIGTERM).") { config, nodeId, http, data, members, snapshotInterval, electionTimeout, join, pseudonymKey, devIssuerKey, tlsCertificate, tlsKey, tlsAuthority, logFormat, rateLimit };
        command.SetAction(async (result, token) =>
        {
            // Command line over environment over file.
            static T? Given<T>(ParseResult result, Option<T> option) => result.GetResult(option) is { Implicit: false } ? result.GetValue(option) : default;
            var layered = (result.GetValue(config) is { } configFile ? NodeConfig.Load(configFile) : new NodeConfig()).WithEnvironment();
            var settled = layered with
            {
                NodeId = Given(result, nodeId) ?? layered.NodeId,
                Http = Given(result, http) ?? layered.Http,
                Data = Given(result, data)?.FullName ?? layered.Data,
                Members = Given(result, members) is { Length: > 0 } given ? given : layered.Members,
                SnapshotInterval = result.GetResult(snapshotInterval) is { Implicit: false } ? result.GetValue(snapshotInterval) : layered.SnapshotInterval ?? result.GetValue(snapshotInterval),
                ElectionTimeout = result.GetResult(electionTimeout) is { Implicit: false } ? result.GetValue(electionTimeout) : layered.ElectionTimeout ?? result.GetValue(electionTimeout),
                PseudonymKey = Given(result, pseudonymKey)?.FullName ?? layered.PseudonymKey,
                DevIssuerKey = Given(result, devIssuerKey)?.FullName ?? layered.DevIssuerKey,
                TlsCert = Given(result, tlsCertificate)?.FullName ?? layered.TlsCert,
                TlsKey = Given(result, tlsKey)?.FullName ?? layered.TlsKey,
                TlsCa = Given(result, tlsAuthority)?.FullName ?? layered.TlsCa,
                LogFormat = Given(result, logFormat) ?? layered.LogFormat ?? "plain",
            };
            var id = settled.NodeId ?? throw new CommandLineFailure("Give --node-id (or HEALTH_NODE_ID, or --config).");
            var parsed = ParseMembers(settled.Members is { Length: > 0 } list ? list : throw new CommandLineFailure("Give every member with --member (or HEALTH_MEMBERS, or --config)."));
            if (parsed.All(m => m.NodeId != id))
                throw new CommandLineFailure($"--node-id {id} is not one of the --member entries.");
            var url = Uri.TryCreate(settled.Http, UriKind.Absolute, out var parsedUrl) && parsedUrl.Scheme is "http" or "https"
                ? parsedUrl
                : throw new CommandLineFailure("--http must be an absolute http:// or https:// URL.");
            var directory = settled.Data ?? throw new CommandLineFailure("Give --data (or HEALTH_DATA, or --config).");
            if (settled.SnapshotInterval < 2)
                throw new CommandLineFailure("--snapshot-interval must be at least 2.");
            if (settled.ElectionTimeout is < 100 or > 60_000)
                throw new CommandLineFailure("--election-timeout is between 100 and 60000 ms.");
            if (settled.LogFormat is not ("plain" or "json"))
                throw new CommandLineFailure("The log format is plain or json.");
            static FileInfo? AsFile(string? path) => path is null ? null : new FileInfo(path);
            var identity = CertificateCommands.LoadIdentity(AsFile(settled.TlsCert), AsFile(settled.TlsKey), AsFile(settled.TlsCa), id, url);
            var settings = new NodeSettings(id, url, Path.GetFullPath(directory), parsed) {
                SnapshotInterval = settled.SnapshotInterval ?? 2048,
                ElectionTimeout = settled.ElectionTimeout ?? 1000,
                Join = result.GetValue(join),
                PseudonymKeyFile = settled.PseudonymKey,
                DevIssuerKeyFile = settled.DevIssuerKey,
                Identity = identity,
                JsonLogs = settled.LogFormat == "json",
                RateLimitPerSecond = result.GetValue(rateLimit),
            };
            var app = await NodeHost.StartAsync(settings, token).ConfigureAwait(false);
            await using (app.ConfigureAwait(false))
                await app.WaitForShutdownAsync(token).ConfigureAwait(false);
            return 0;
        });
        return command;
    }

    private static Command LoadCommand()
    {
        var folder = new Argument<DirectoryInfo>("folder") { Description = "A folder of FHIR transaction Bundles (organisations and practitioners go first)." };
        var url = new Option<string>("--url") { Description = "The node, for example https://127.0.0.1:8081.", Required = true };
        var token = new Option<string>("--token") { Description = "An operator token.", Required = true };
        var authority = new Option<FileInfo>("--cacert") { Description = "The consortium CA, to trust the node's HTTPS certificate." };
        var command = new Command("load", "Ingest a folder of FHIR transaction Bundles into a running node, with a progress bar.") { folder, url, token, authority };
        command.SetAction(async (result, cancel) =>
        {
            var source = result.GetValue(folder)!;
            if (!source.Exists)
                throw new CommandLineFailure($"{source.FullName} does not exist.");
            var node = CliHttp.NodeUrl(result.GetValue(url));
            using var handler = CliHttp.Handler(result.GetValue(authority));

            var failures = await SampleLoader.LoadAsync(SampleLoader.Plan(source, 1), [new Uri(node, "/fhir")], result.GetValue(token)!, handler, cancel).ConfigureAwait(false);
            return failures == 0 ? 0 : 1;
        });
        return command;
    }

    private static Command DemoCommand()
    {
        var data = new Option<DirectoryInfo>("--data") { Description = "Where the demo nodes keep their data.", DefaultValueFactory = _ => new DirectoryInfo(Path.Combine(".data", "demo")) };
        var httpBase = new Option<int>("--http-base-port") { Description = "node i listens for HTTP on this port + i.", DefaultValueFactory = _ => 8080 };
        var raftBase = new Option<int>("--raft-base-port") { Description = "node i listens for Raft on this port + i.", DefaultValueFactory = _ => 9080 };
        var samples = new Option<DirectoryInfo>("--samples") { Description = "Folder of FHIR transaction Bundles to load on first start (default: ../shared/fhir/synthea-r4 beside the checkout)." };
        var command = new Command("demo", "Start three provider nodes on loopback, load the sample patients and print how to use them.") { data, samples, httpBase, raftBase };
        command.SetAction((result, token) => Demo.RunAsync(result.GetValue(data)!, result.GetValue(samples), result.GetValue(httpBase), result.GetValue(raftBase), token));
        return command;
    }

    private static Command TokenCommand()
    {
        var key = new Option<FileInfo>("--key") { Description = "The dev issuer's key file (the demo prints where its key is).", Required = true };
        var roles = new Option<string[]>("--role") { Description = "clinician, patient, auditor or operator; repeat for several.", Required = true, AllowMultipleArgumentsPerToken = true };
        roles.AcceptOnlyFromAmong("clinician", "patient", "auditor", "operator");
        var scopes = new Option<string[]>("--scope") { Description = "SMART scopes; by default patient/*.rs, user/*.rs or system/*.cruds to match the roles.", AllowMultipleArgumentsPerToken = true };
        var subject = new Option<string>("--subject") { Description = "The user's id.", DefaultValueFactory = _ => "dev-user" };
        var organization = new Option<string>("--org") { Description = "The user's organisation." };
        var practitioner = new Option<string>("--practitioner") { Description = "The clinician's Practitioner id." };
        var patient = new Option<string>("--patient") { Description = "The patient's Patient id (patient role)." };
        var minutes = new Option<int>("--minutes") { Description = "Lifetime in minutes.", DefaultValueFactory = _ => 60 };
        var command = new Command("token", "Print a bearer token from the dev issuer.") { key, roles, scopes, subject, organization, practitioner, patient, minutes };
        command.SetAction(result =>
        {
            var keyFile = result.GetValue(key)!;
            if (!keyFile.Exists)
                throw new CommandLineFailure($"{keyFile.FullName} does not exist; start the demo or a node first.");
            var roleList = result.GetValue(roles)!;
            var scopeList = result.GetValue(scopes) is { Length: > 0 } given ? given : roleList.Select(DefaultScope).OfType<string>().ToArray();
            var claims = new Dictionary<string, string>();
            foreach (var (name, option) in new[] { ("org", organization), ("practitioner", practitioner), ("patient", patient) })
            {
                if (result.GetValue(option) is { Length: > 0 } value)
                    claims[name] = value;
            }

            Console.WriteLine(Auth.DevTokenIssuer.LoadOrCreate(keyFile.FullName).Mint(result.GetValue(subject)!, roleList, scopeList, claims,
                TimeSpan.FromMinutes(result.GetValue(minutes)), TimeProvider.System.GetUtcNow()));
            return 0;
        });
        return command;
    }

    /// <summary>The SMART scope a role gets when none is asked for.</summary>
    public static string? DefaultScope(string role) => role switch
    {
        "patient" => "patient/*.rs patient/Consent.cud",
        "clinician" => "user/*.rs",
        "operator" => "system/*.cruds",
        _ => null,
    };

    private static List<LedgerMember> ParseMembers(string[] values)
    {
        try
        {
            return values.Select(LedgerMember.Parse).ToList();
        }
        catch (FormatException e)
        {
            throw new CommandLineFailure(e.Message);
        }
    }
}
