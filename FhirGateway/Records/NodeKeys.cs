using System.Security.Cryptography;

namespace Health.FhirGateway.Records;

/// <summary>
/// The node's secret keys. The master key (32 random bytes, from a key file or the
/// <c>HEALTH_MASTER_KEY</c> environment variable, base64) wraps every patient's data key and the
/// search index's key (both kept in the record store). The pseudonym key is shared by the whole consortium and
/// turns a patient's identifier into the patient key used on the ledger.
/// </summary>
public sealed class NodeKeys
{
    private const string MasterKeyVariable = "HEALTH_MASTER_KEY";

    private NodeKeys(byte[] master, byte[] pseudonym)
    {
        MasterKey = master;
        PseudonymKey = pseudonym;
    }

    /// <summary>Wraps patients' data keys.</summary>
    public byte[] MasterKey { get; }

    /// <summary>Keys the consortium-wide patient pseudonyms.</summary>
    public byte[] PseudonymKey { get; }

    /// <summary>
    /// Loads the keys, creating missing key files (owner-readable only) on first start; the
    /// environment variable, when set, takes precedence over the master key file.
    /// </summary>
    public static NodeKeys Load(string masterKeyFile, string pseudonymKeyFile)
    {
        if (File.Exists(masterKeyFile + ".next"))
            throw new InvalidOperationException("A master key rotation was interrupted; run `health-node rotate-master-key` again before starting the node.");
        var master = Environment.GetEnvironmentVariable(MasterKeyVariable) is { Length: > 0 } fromEnvironment
            ? Decode(fromEnvironment, MasterKeyVariable)
            : LoadOrCreate(masterKeyFile);
        return new NodeKeys(master, LoadOrCreate(pseudonymKeyFile));
    }

    /// <summary>Reads a base64 key file or creates one with 32 random bytes.</summary>
    public static byte[] LoadOrCreate(string path)
        => Decode(Health.Ledger.Storage.KeyFiles.ReadOrCreate(path, () => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))).Trim(), path);

    private static byte[] Decode(string base64, string source)
    {
        try
        {
            var key = Convert.FromBase64String(base64);
            return key.Length == 32 ? key : throw new InvalidOperationException($"The key from {source} must be 32 bytes.");
        }
        catch (FormatException e)
        {
            throw new InvalidOperationException($"The key from {source} is not base64.", e);
        }
    }
}
