using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
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

    /// <summary>
    /// A refused request's status and what the node said: the diagnostics of its OperationOutcome's
    /// issues, or the start of any other body.
    /// </summary>
    public static async Task<string> DescribeRefusalAsync(HttpResponseMessage response, CancellationToken token)
    {
        const int MaxBody = 300;
        var body = await response.Content.ReadAsStringAsync(token).ConfigureAwait(false);
        var said = OutcomeDiagnostics(body) ?? (body.Length <= MaxBody ? body : body[..MaxBody] + "...");
        var status = $"{(int)response.StatusCode} ({response.ReasonPhrase ?? response.StatusCode.ToString()})";
        return string.IsNullOrWhiteSpace(said) ? status : $"{status}: {said}";
    }

    private static string? OutcomeDiagnostics(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("resourceType", out var type) || !type.ValueEquals("OperationOutcome")
                || !root.TryGetProperty("issue", out var issues) || issues.ValueKind != JsonValueKind.Array)
                return null;
            var said = issues.EnumerateArray()
                .Select(i => i.TryGetProperty("diagnostics", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null)
                .OfType<string>();
            return string.Join(" ", said);
        }
        catch (JsonException)
        {
            return null;
        }
    }

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
