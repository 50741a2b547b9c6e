using System.Security.Cryptography;
using System.Text;
using Hl7.Fhir.Model;

namespace Health.FhirGateway.Records;

/// <summary>
/// The consortium-wide pseudonym of a patient, as the ledger knows them: HMAC-SHA256 of the
/// patient's shared identifier (system|value) under the consortium's pseudonym key. A patient
/// without that identifier gets one from their resource id, which is unique but known only here.
/// </summary>
public sealed class PatientPseudonyms(byte[] pseudonymKey, string identifierSystem = PatientPseudonyms.SsnSystem)
{
    /// <summary>The US Social Security Number identifier system, which the Synthea data carries.</summary>
    public const string SsnSystem = "http://hl7.org/fhir/sid/us-ssn";

    /// <summary>An identifier system whose values are patient keys themselves: a way to name a patient without PHI.</summary>
    public const string PatientKeySystem = "urn:health-ledger:patient-key";

    /// <summary>The patient key of a Patient whose id is set.</summary>
    public string KeyOf(Patient patient)
        => patient.Identifier.FirstOrDefault(i => i.System == identifierSystem && !string.IsNullOrEmpty(i.Value)) is { } identifier
            ? KeyOf(identifierSystem, identifier.Value!)
            : Hash("urn:health-ledger:patient-id|" + patient.Id);

    /// <summary>
    /// The patient key named by <c>system|value</c>: a consortium identifier (<see cref="SsnSystem"/>)
    /// or a key itself (<see cref="PatientKeySystem"/>); null for any other form or an empty value.
    /// </summary>
    public string? KeyOfToken(string token)
    {
        var bar = token.IndexOf('|', StringComparison.Ordinal);
        if (bar <= 0 || bar == token.Length - 1)
            return null;
        var (system, value) = (token[..bar], token[(bar + 1)..]);
        return system switch
        {
            PatientKeySystem => value.ToLowerInvariant(),
            SsnSystem => KeyOf(system, value),
            _ => null,
        };
    }

    /// <summary>How a client names a patient by <see cref="KeyOfToken"/>, for messages.</summary>
    public const string TokenForms = $"{SsnSystem}|value or {PatientKeySystem}|key";

    /// <summary>The patient key of the patient with this identifier (the same at every member).</summary>
    public string KeyOf(string system, string value) => Hash(system + "|" + value);

    private string Hash(string text) => Convert.ToHexStringLower(HMACSHA256.HashData(pseudonymKey, Encoding.UTF8.GetBytes(text)));
}
