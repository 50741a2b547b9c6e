using System.CommandLine;
using System.Net;
using System.Security.Cryptography;
using Health.Ledger.Security;

namespace Health.FhirGateway.Cli;

/// <summary>
/// <c>health-node certs</c>: the consortium's development PKI (a CA and node certificates) and the
/// checks a node makes on the certificate it is started with.
/// </summary>
internal static class CertificateCommands
{
    public static Command Create()
    {
        var certs = new Command("certs", "Make the consortium's development CA and node certificates (git-ignored; production uses the consortium's own CA).");
        certs.Subcommands.Add(AuthorityCommand());
        certs.Subcommands.Add(NodeCommand());
        return certs;
    }

    /// <summary>Loads the identity a node runs with, or null when no TLS option is given.</summary>
    /// <exception cref="CommandLineFailure">Options missing, files unreadable, or a certificate that does not fit.</exception>
    public static ConsortiumIdentity? LoadIdentity(FileInfo? certificate, FileInfo? key, FileInfo? authority, string nodeId, Uri url)
    {
        if (certificate is null && key is null && authority is null)
        {
            if (url.Scheme == "https")
                throw new CommandLineFailure("An https:// --http needs --tls-cert, --tls-key and --tls-ca.");
            return null;
        }

        if (certificate is null || key is null || authority is null)
            throw new CommandLineFailure("Give --tls-cert, --tls-key and --tls-ca together.");
        if (url.Scheme != "https")
            throw new CommandLineFailure("With TLS, --http must be an https:// URL.");
        ConsortiumIdentity identity;
        try
        {
            identity = ConsortiumIdentity.Load(certificate.FullName, key.FullName, authority.FullName);
        }
        catch (Exception e) when (e is IOException or CryptographicException or InvalidOperationException or UnauthorizedAccessException)
        {
            throw new CommandLineFailure($"The TLS files could not be used: {e.Message}");
        }

        if (identity.NodeId != nodeId)
            throw new CommandLineFailure($"--tls-cert names node {identity.NodeId}, not {nodeId}.");
        return identity;
    }

    private static Command AuthorityCommand()
    {
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for consortium-ca.pem and consortium-ca.key.", Required = true };
        var command = new Command("ca", "Make the consortium's development CA (kept if one is already in the folder).") { output };
        command.SetAction(result =>
        {
            Console.WriteLine(ConsortiumCertificates.EnsureAuthority(result.GetValue(output)!.FullName));
            return 0;
        });
        return command;
    }

    private static Command NodeCommand()
    {
        var authority = new Option<DirectoryInfo>("--ca") { Description = "Folder holding consortium-ca.pem and consortium-ca.key.", Required = true };
        var nodeId = new Option<string>("--node-id") { Description = "The node the certificate names.", Required = true };
        var organization = new Option<string>("--organization") { Description = "The node's organisation (certificate O=); defaults to the node id." };
        var addresses = new Option<string[]>("--ip") { Description = "IP addresses the node serves on.", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => ["127.0.0.1"] };
        var names = new Option<string[]>("--dns") { Description = "DNS names the node serves on.", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => ["localhost"] };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for {node-id}.pem and {node-id}.key.", Required = true };
        var command = new Command("node", "Issue a node certificate (TLS server and client) from the development CA.") { authority, nodeId, organization, addresses, names, output };
        command.SetAction(result =>
        {
            var ips = result.GetValue(addresses)!.Select(a => IPAddress.TryParse(a, out var ip) ? ip : throw new CommandLineFailure($"--ip {a} is not an IP address.")).ToList();
            var caFolder = result.GetValue(authority)!.FullName;
            if (!File.Exists(Path.Combine(caFolder, ConsortiumCertificates.AuthorityKeyFile)))
                throw new CommandLineFailure($"{caFolder} holds no {ConsortiumCertificates.AuthorityKeyFile}; make one with `health-node certs ca`.");
            var id = result.GetValue(nodeId)!;
            var (certificate, key) = ConsortiumCertificates.IssueNode(caFolder, result.GetValue(output)!.FullName, id, result.GetValue(organization) ?? id, ips, result.GetValue(names)!);
            Console.WriteLine(certificate);
            Console.WriteLine(key);
            return 0;
        });
        return command;
    }
}
