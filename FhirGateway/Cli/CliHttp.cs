using System.Security.Cryptography.X509Certificates;
using Health.Ledger.Security;

namespace Health.FhirGateway.Cli;

/// <summary>What the commands that talk to a running node share: its URL and trust in its certificate.</summary>
internal static class CliHttp
{
    /// <summary>Reads a node URL option.</summary>
    /// <exception cref="CommandLineFailure">It is not an absolute http(s) URL.</exception>
    public static Uri NodeUrl(string? text, string option = "--url")
        => Uri.TryCreate(text, UriKind.Absolute, out var parsed) && parsed.Scheme is "http" or "https"
            ? parsed
            : throw new CommandLineFailure($"{option} must be an absolute http:// or https:// URL.");

    /// <summary>A handler that trusts the node's certificate when it chains to the given consortium CA (else the system's trust).</summary>
    public static SocketsHttpHandler Handler(FileInfo? consortiumAuthority)
    {
        var handler = new SocketsHttpHandler();
        if (consortiumAuthority is null)
            return handler;
        X509Certificate2 trusted;
        try
        {
            trusted = X509CertificateLoader.LoadCertificateFromFile(consortiumAuthority.FullName);
        }
        catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException or UnauthorizedAccessException)
        {
            throw new CommandLineFailure($"--cacert could not be read: {e.Message}");
        }

        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _)
            => certificate is X509Certificate2 server && ConsortiumIdentity.ChainsTo(server, trusted);
        return handler;
    }
}
