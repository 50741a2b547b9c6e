using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Health.Ledger.Checkpoints;

/// <summary>A node's ECDSA P-256 key that signs checkpoints, kept as a PEM file in the node's data directory.</summary>
public sealed class NodeSigningKey : IDisposable
{
    private NodeSigningKey(ECDsa key)
    {
        Key = key;
        KeyId = ComputeKeyId(key);
    }

    /// <summary>The key pair.</summary>
    public ECDsa Key { get; }

    /// <summary>Lowercase hex SHA-256 of the public key's SubjectPublicKeyInfo.</summary>
    public string KeyId { get; }

    /// <summary>Loads the key at <paramref name="path"/>, creating it (owner-readable only) when absent.</summary>
    public static NodeSigningKey LoadOrCreate(string path) => new(Storage.KeyFiles.ReadOrCreateEcdsa(path));

    /// <summary>The key of a node certificate (ECDSA), so verifiers can trust checkpoints through the consortium CA.</summary>
    /// <exception cref="InvalidOperationException">The certificate has no ECDSA private key.</exception>
    public static NodeSigningKey FromCertificate(X509Certificate2 certificate)
        => new(certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("Checkpoints are signed with an ECDSA node certificate."));

    /// <summary>The public key as PEM, for publishing to verifiers.</summary>
    public string PublicKeyPem() => Key.ExportSubjectPublicKeyInfoPem();

    /// <summary>The key id of any ECDSA key.</summary>
    public static string ComputeKeyId(ECDsa key)
        => Convert.ToHexStringLower(SHA256.HashData(key.ExportSubjectPublicKeyInfo()));

    /// <inheritdoc/>
    public void Dispose() => Key.Dispose();
}
