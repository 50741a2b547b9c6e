using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Health.FhirGateway.Auth;

/// <summary>
/// The offline token issuer for demos and tests: ES256 JWTs signed with a P-256 key kept as a PEM
/// file (owner-readable only). Production nodes validate Microsoft Entra ID tokens instead.
/// </summary>
public sealed class DevTokenIssuer
{
    /// <summary>The issuer every dev token names.</summary>
    public const string Issuer = "https://dev-issuer.health-ledger.invalid";

    /// <summary>The audience every token must name.</summary>
    public const string Audience = "health-ledger";

    private readonly ECDsaSecurityKey key;

    private DevTokenIssuer(ECDsa ecdsa) => key = new ECDsaSecurityKey(ecdsa) { KeyId = Convert.ToHexStringLower(SHA256.HashData(ecdsa.ExportSubjectPublicKeyInfo()))[..16] };

    /// <summary>The key that validates dev tokens.</summary>
    public SecurityKey ValidationKey => key;

    /// <summary>Loads the issuer key at <paramref name="path"/>, creating it when absent.</summary>
    public static DevTokenIssuer LoadOrCreate(string path) => new(Health.Ledger.Storage.KeyFiles.ReadOrCreateEcdsa(path));

    /// <summary>Mints a token.</summary>
    /// <param name="subject">The user.</param>
    /// <param name="roles">clinician, patient, auditor and/or operator.</param>
    /// <param name="scopes">SMART v2 scopes, for example <c>user/*.rs</c>.</param>
    /// <param name="claims">Further claims: <c>org</c>, <c>practitioner</c>, <c>patient</c>.</param>
    /// <param name="lifetime">How long it is valid.</param>
    /// <param name="now">The issue time.</param>
    public string Mint(string subject, IEnumerable<string> roles, IEnumerable<string> scopes, IReadOnlyDictionary<string, string> claims, TimeSpan lifetime, DateTimeOffset now)
    {
        var identity = new ClaimsIdentity();
        identity.AddClaim(new Claim("sub", subject));
        foreach (var role in roles)
            identity.AddClaim(new Claim("roles", role));
        identity.AddClaim(new Claim("scope", string.Join(' ', scopes)));
        foreach (var (type, value) in claims)
            identity.AddClaim(new Claim(type, value));
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            Subject = identity,
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = (now + lifetime).UtcDateTime,
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.EcdsaSha256),
        });
    }
}
