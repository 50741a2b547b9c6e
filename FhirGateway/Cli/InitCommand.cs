using System.CommandLine;
using System.Net;
using Health.FhirGateway.Records;
using Health.Ledger.Security;

namespace Health.FhirGateway.Cli;

/// <summary><c>health-node init</c>: a new node's data directory, master key, certificate and configuration file.</summary>
internal static class InitCommand
{
    public static Command Create()
    {
        var nodeId = new Option<string>("--node-id") { Description = "The new node's id.", Required = true };
        var data = new Option<DirectoryInfo>("--data") { Description = "The data directory to create (must be empty or absent).", Required = true };
        var http = new Option<string>("--http") { Description = "The URL the node serves on; https when --ca is given.", Required = true };
        var members = new Option<string[]>("--member") { Description = "Every voting member, id=ip:raftPort=httpUrl, this node included.", Required = true, AllowMultipleArgumentsPerToken = true };
        var authority = new Option<DirectoryInfo>("--ca") { Description = "The development CA folder (from `health-node certs ca`): issue this node's certificate and turn on mutual TLS." };
        var addresses = new Option<string[]>("--ip") { Description = "IP addresses for the certificate.", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => ["127.0.0.1"] };
        var pseudonymKey = new Option<FileInfo>("--pseudonym-key") { Description = "The consortium's shared pseudonym key file." };
        var devIssuerKey = new Option<FileInfo>("--dev-issuer-key") { Description = "The dev token issuer's key file (development only)." };
        var command = new Command("init", "Create a node's data directory: master key, certificate from the dev CA, and node.json with sensible defaults.")
        {
            nodeId, data, http, members, authority, addresses, pseudonymKey, devIssuerKey,
        };
        command.SetAction(result =>
        {
            var directory = result.GetValue(data)!;
            if (directory.Exists && directory.EnumerateFileSystemInfos().Any())
                throw new CommandLineFailure($"{directory.FullName} is not empty.");
            var id = result.GetValue(nodeId)!;
            var memberList = result.GetValue(members)!;
            if (!memberList.Any(m => m.StartsWith(id + "=", StringComparison.Ordinal)))
                throw new CommandLineFailure($"--node-id {id} is not one of the --member entries.");
            directory.Create();
            NodeKeys.LoadOrCreate(Path.Combine(directory.FullName, "keys", "master.key"));
            var config = new NodeConfig
            {
                NodeId = id,
                Http = result.GetValue(http),
                Data = directory.FullName,
                Members = memberList,
                SnapshotInterval = 2048,
                PseudonymKey = result.GetValue(pseudonymKey)?.FullName,
                DevIssuerKey = result.GetValue(devIssuerKey)?.FullName,
                LogFormat = "plain",
            };
            if (result.GetValue(authority) is { } ca)
            {
                if (!File.Exists(Path.Combine(ca.FullName, ConsortiumCertificates.AuthorityKeyFile)))
                    throw new CommandLineFailure($"{ca.FullName} holds no {ConsortiumCertificates.AuthorityKeyFile}; make one with `health-node certs ca`.");
                var ips = result.GetValue(addresses)!.Select(a => IPAddress.TryParse(a, out var ip) ? ip : throw new CommandLineFailure($"--ip {a} is not an IP address.")).ToList();
                var (certificate, key) = ConsortiumCertificates.IssueNode(ca.FullName, Path.Combine(directory.FullName, "certs"), id, id, ips, ["localhost"]);
                var authorityCopy = Path.Combine(directory.FullName, "certs", ConsortiumCertificates.AuthorityFile);
                File.Copy(Path.Combine(ca.FullName, ConsortiumCertificates.AuthorityFile), authorityCopy);
                config = config with { TlsCert = certificate, TlsKey = key, TlsCa = authorityCopy };
            }

            var path = Path.Combine(directory.FullName, "node.json");
            config.Save(path);
            Console.WriteLine($"Initialised {id} in {directory.FullName}. Start it with: health-node run --config {path}");
            return 0;
        });
        return command;
    }
}
