using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Health.Ledger.Security;

/// <summary>
/// Makes the consortium's development PKI: a CA and, per node, an ECDSA P-256 certificate for
/// both TLS server and client use, naming the node as <c>urn:health-ledger:node:{id}</c>.
/// Production replaces these with certificates from the consortium's own CA.
/// </summary>
public static class ConsortiumCertificates
{
    /// <summary>File name of the CA certificate in a certificates folder.</summary>
    public const string AuthorityFile = "consortium-ca.pem";

    /// <summary>File name of the CA's private key.</summary>
    public const string AuthorityKeyFile = "consortium-ca.key";

    /// <summary>Creates a CA in <paramref name="folder"/> unless one is there; returns the certificate path.</summary>
    public static string EnsureAuthority(string folder, string name = "Health ledger consortium development CA")
    {
        Directory.CreateDirectory(folder);
        var certificatePath = Path.Combine(folder, AuthorityFile);
        if (File.Exists(certificatePath))
            return certificatePath;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(5));
        WritePrivate(Path.Combine(folder, AuthorityKeyFile), key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        return certificatePath;
    }

    /// <summary>Issues a node certificate signed by the CA in <paramref name="authorityFolder"/>; returns the certificate and key paths.</summary>
    public static (string Certificate, string Key) IssueNode(string authorityFolder, string outputFolder, string nodeId, string organization,
        IEnumerable<IPAddress> addresses, IEnumerable<string> dnsNames)
    {
        using var authority = X509Certificate2.CreateFromPemFile(Path.Combine(authorityFolder, AuthorityFile), Path.Combine(authorityFolder, AuthorityKeyFile));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={nodeId}, O={organization}"), key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddUri(new Uri(ConsortiumIdentity.NodeUriPrefix + nodeId));
        foreach (var address in addresses)
            names.AddIpAddress(address);
        foreach (var dns in dnsNames)
            names.AddDnsName(dns);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.Create(authority, now.AddMinutes(-5), now.AddYears(1), RandomNumberGenerator.GetBytes(16));
        Directory.CreateDirectory(outputFolder);
        var certificatePath = Path.Combine(outputFolder, $"{nodeId}.pem");
        var keyPath = Path.Combine(outputFolder, $"{nodeId}.key");
        WritePrivate(keyPath, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        return (certificatePath, keyPath);
    }

    private static void WritePrivate(string path, string pem)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var writer = new StreamWriter(path, System.Text.Encoding.ASCII, options);
        writer.Write(pem);
    }
}
