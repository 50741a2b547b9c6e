using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Health.Ledger.Entries;

namespace Health.Ledger.Checkpoints;

/// <summary>
/// A node's signed statement that the ledger of <see cref="TreeSize"/> entries has root <see cref="Root"/>.
/// The signature (ECDSA P-256, SHA-256, IEEE P1363 form) covers a fixed domain label, the size and the root.
/// </summary>
/// <param name="TreeSize">Number of entries covered.</param>
/// <param name="Root">Merkle root of those entries.</param>
/// <param name="Signer">Id of the signing node.</param>
/// <param name="KeyId">Hex SHA-256 of the signer's public key.</param>
/// <param name="Signature">The signature bytes.</param>
public sealed record SignedCheckpoint(long TreeSize, byte[] Root, string Signer, string KeyId, byte[] Signature)
{
    private static readonly byte[] DomainLabel = Encoding.ASCII.GetBytes("health-ledger checkpoint v1\n");

    /// <summary>Signs a checkpoint with a node's key.</summary>
    public static SignedCheckpoint Sign(long treeSize, byte[] root, string signer, NodeSigningKey key)
        => new(treeSize, root, signer, key.KeyId, key.Key.SignData(SignedBytes(treeSize, root), HashAlgorithmName.SHA256));

    /// <summary>True when the signature is valid under <paramref name="publicKey"/> and the key id matches it.</summary>
    public bool Verify(ECDsa publicKey)
        => NodeSigningKey.ComputeKeyId(publicKey) == KeyId
           && publicKey.VerifyData(SignedBytes(TreeSize, Root), Signature, HashAlgorithmName.SHA256);

    /// <summary>The checkpoint as a command to append.</summary>
    public LedgerCommand ToCommand() => new(LedgerEntryKinds.Checkpoint.Name, new Dictionary<string, string>
    {
        ["treeSize"] = TreeSize.ToString(CultureInfo.InvariantCulture),
        ["root"] = Convert.ToHexStringLower(Root),
        ["signer"] = Signer,
        ["keyId"] = KeyId,
        ["signature"] = Convert.ToBase64String(Signature),
    });

    /// <summary>Reads a checkpoint from a ledger entry of kind <c>Checkpoint</c>.</summary>
    /// <exception cref="FormatException">The entry is not a well-formed checkpoint.</exception>
    public static SignedCheckpoint FromFields(IReadOnlyDictionary<string, string> fields)
    {
        try
        {
            return new SignedCheckpoint(
                long.Parse(fields["treeSize"], NumberStyles.None, CultureInfo.InvariantCulture),
                Convert.FromHexString(fields["root"]),
                fields["signer"],
                fields["keyId"],
                Convert.FromBase64String(fields["signature"]));
        }
        catch (KeyNotFoundException e)
        {
            throw new FormatException("Checkpoint field missing.", e);
        }
    }

    private static byte[] SignedBytes(long treeSize, byte[] root)
    {
        using var writer = new CanonicalWriter();
        writer.WriteBytes(DomainLabel);
        writer.WriteInt64(treeSize);
        writer.WriteBytes(root);
        return writer.ToArray();
    }
}
