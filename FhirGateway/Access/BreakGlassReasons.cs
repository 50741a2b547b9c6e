using System.Security.Cryptography;
using System.Text;
using Health.FhirGateway.Records;

namespace Health.FhirGateway.Access;

/// <summary>
/// Seals the free-text reason of a break-glass access before it goes on the ledger: it may name
/// the patient, so the ledger holds it only encrypted (AES-256-GCM under a key every member derives
/// from the consortium's pseudonym key), bound to the patient key it is about.
/// </summary>
public sealed class BreakGlassReasons(byte[] pseudonymKey)
{
    /// <summary>Longest reason accepted, in characters.</summary>
    public const int MaxLength = 500;

    private readonly byte[] key = HKDF.DeriveKey(HashAlgorithmName.SHA256, pseudonymKey, 32, info: Encoding.ASCII.GetBytes("health-ledger break-glass reason v1"));

    /// <summary>Seals a reason for the ledger.</summary>
    public string Seal(string reason, string patientKey)
        => Convert.ToBase64String(RecordCipher.Seal(key, Encoding.UTF8.GetBytes(reason), $"break-glass/{patientKey}"));

    /// <summary>Opens a sealed reason, or returns null when it was not sealed for this patient with this consortium's key.</summary>
    public string? Open(string sealedReason, string patientKey)
    {
        try
        {
            return Encoding.UTF8.GetString(RecordCipher.Open(key, Convert.FromBase64String(sealedReason), $"break-glass/{patientKey}"));
        }
        catch (Exception e) when (e is FormatException or CryptographicException)
        {
            return null;
        }
    }
}
