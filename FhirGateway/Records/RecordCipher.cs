using System.Security.Cryptography;
using System.Text;

namespace Health.FhirGateway.Records;

/// <summary>
/// Envelope encryption with AES-256-GCM: a resource body is sealed under its patient's data key,
/// with the resource type, id and version as associated data so a ciphertext cannot be moved to
/// another resource; data keys are sealed under the master key.
/// </summary>
public static class RecordCipher
{
    private const int NonceSize = 12;
    private const int TagSize = 16;

    /// <summary>A fresh 256-bit data key.</summary>
    public static byte[] NewDataKey() => RandomNumberGenerator.GetBytes(32);

    /// <summary>Seals <paramref name="plaintext"/>: nonce ‖ ciphertext ‖ tag.</summary>
    public static byte[] Seal(byte[] key, ReadOnlySpan<byte> plaintext, string associatedData)
    {
        var sealedBytes = new byte[NonceSize + plaintext.Length + TagSize];
        var nonce = sealedBytes.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(nonce, plaintext, sealedBytes.AsSpan(NonceSize, plaintext.Length), sealedBytes.AsSpan(NonceSize + plaintext.Length), Encoding.UTF8.GetBytes(associatedData));
        return sealedBytes;
    }

    /// <summary>Opens what <see cref="Seal"/> produced.</summary>
    /// <exception cref="AuthenticationTagMismatchException">Wrong key, wrong associated data or altered bytes.</exception>
    public static byte[] Open(byte[] key, ReadOnlySpan<byte> sealedBytes, string associatedData)
    {
        if (sealedBytes.Length < NonceSize + TagSize)
            throw new AuthenticationTagMismatchException();
        var length = sealedBytes.Length - NonceSize - TagSize;
        var plaintext = new byte[length];
        using var aes = new AesGcm(key, TagSize);
        aes.Decrypt(sealedBytes[..NonceSize], sealedBytes.Slice(NonceSize, length), sealedBytes[(NonceSize + length)..], plaintext, Encoding.UTF8.GetBytes(associatedData));
        return plaintext;
    }

    /// <summary>Associated data binding a body to one resource version.</summary>
    public static string ResourceBinding(string type, string id, int version) => $"{type}/{id}/_history/{version}";

    /// <summary>Associated data binding a wrapped data key to its owner.</summary>
    public static string KeyBinding(string owner) => $"data-key/{owner}";
}
