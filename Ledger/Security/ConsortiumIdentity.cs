using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Health.Ledger.Security;

/// <summary>
/// A node's place in the consortium's public key infrastructure: its certificate and key, and the
/// consortium CA that every member's certificate must chain to. A node id is carried in the
/// certificate as the URI <c>urn:health-ledger:node:{id}</c>.
/// </summary>
public sealed class ConsortiumIdentity : IDisposable
{
    /// <summary>The URI prefix naming a node in a certificate's subject alternative names.</summary>
    public const string NodeUriPrefix = "urn:health-ledger:node:";

    private ConsortiumIdentity(X509Certificate2 certificate, X509Certificate2 authority)
    {
        Certificate = certificate;
        Authority = authority;
        NodeId = NodeIdOf(certificate) ?? throw new InvalidOperationException($"The certificate names no node ({NodeUriPrefix}...).");
        if (!IsIssuedByConsortium(certificate))
            throw new InvalidOperationException("The node certificate is not issued by the consortium CA.");
    }

    /// <summary>This node's certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The consortium CA.</summary>
    public X509Certificate2 Authority { get; }

    /// <summary>The node id the certificate names.</summary>
    public string NodeId { get; }

    /// <summary>Loads PEM files.</summary>
    /// <exception cref="InvalidOperationException">The certificate does not name a node or does not chain to the CA.</exception>
    public static ConsortiumIdentity Load(string certificateFile, string keyFile, string authorityFile)
    {
        var authority = X509CertificateLoader.LoadCertificateFromFile(authorityFile);
        using var ephemeral = X509Certificate2.CreateFromPemFile(certificateFile, keyFile);

        // TLS on Linux wants the key in a persistable form; a PKCS#12 round trip gives it that.
        var certificate = X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null);
        return new ConsortiumIdentity(certificate, authority);
    }

    /// <summary>The node id a certificate names, or null.</summary>
    public static string? NodeIdOf(X509Certificate2 certificate)
    {
        var names = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
        if (names is null)
            return null;
        foreach (var uri in SubjectAlternativeUris(names))
        {
            if (uri.StartsWith(NodeUriPrefix, StringComparison.Ordinal) && uri.Length > NodeUriPrefix.Length)
                return uri[NodeUriPrefix.Length..];
        }

        return null;
    }

    /// <summary>SHA-256 of the certificate's DER bytes, lower-case hex: what admissions pin.</summary>
    public static string Fingerprint(X509Certificate2 certificate) => Convert.ToHexStringLower(SHA256.HashData(certificate.RawData));

    /// <summary>Whether a certificate chains to the consortium CA (and to nothing else) and is valid now.</summary>
    public bool IsIssuedByConsortium(X509Certificate2 certificate) => ChainsTo(certificate, Authority);

    /// <summary>
    /// Whether <paramref name="certificate"/> chains to <paramref name="authority"/> and to nothing
    /// else, valid at <paramref name="at"/> (now when null). Revocation is not checked: removal is
    /// the ledger's business.
    /// </summary>
    public static bool ChainsTo(X509Certificate2 certificate, X509Certificate2 authority, DateTime? at = null)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (at is { } time)
            chain.ChainPolicy.VerificationTime = time;
        return chain.Build(certificate) && chain.ChainElements[^1].Certificate.RawData.AsSpan().SequenceEqual(authority.RawData);
    }

    /// <summary>
    /// A TLS validation callback accepting a peer whose certificate chains to the consortium CA and
    /// whose node <paramref name="isAdmitted"/> (node id, fingerprint) says may take part.
    /// </summary>
    public RemoteCertificateValidationCallback PeerValidator(Func<string, string, bool> isAdmitted)
        => (_, certificate, _, _) => certificate is X509Certificate2 peer && IsAdmittedPeer(peer, isAdmitted);

    /// <summary>Whether a peer certificate is the consortium's and names an admitted node.</summary>
    public bool IsAdmittedPeer(X509Certificate2 peer, Func<string, string, bool> isAdmitted)
        => IsIssuedByConsortium(peer) && NodeIdOf(peer) is { } nodeId && isAdmitted(nodeId, Fingerprint(peer));

    private static IEnumerable<string> SubjectAlternativeUris(X509SubjectAlternativeNameExtension names)
    {
        // .NET enumerates DNS names and IP addresses only; URIs are read from the DER.
        var reader = new System.Formats.Asn1.AsnReader(names.RawData, System.Formats.Asn1.AsnEncodingRules.DER);
        var sequence = reader.ReadSequence();
        var uriTag = new System.Formats.Asn1.Asn1Tag(System.Formats.Asn1.TagClass.ContextSpecific, 6);
        while (sequence.HasData)
        {
            var tag = sequence.PeekTag();
            if (tag == uriTag)
                yield return sequence.ReadCharacterString(System.Formats.Asn1.UniversalTagNumber.IA5String, uriTag);
            else
                sequence.ReadEncodedValue();
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Certificate.Dispose();
        Authority.Dispose();
    }
}
