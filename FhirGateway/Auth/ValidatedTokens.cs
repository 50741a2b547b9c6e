using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Authentication.JwtBearer;

namespace Health.FhirGateway.Auth;

/// <summary>
/// Bearer tokens this node has validated, so that a client sending the same token with every
/// request pays for the signature check (an ECDSA or RSA verification, a sixth of a gated read's
/// CPU) once rather than per request. A cached token is reused only while its lifetime allows
/// without the clock skew the full check tolerates, and never for longer than
/// <see cref="LongestReuse"/>, so that a signing key an identity provider withdraws stops being
/// trusted within that time. Tokens are held by their SHA-256, never as text.
/// </summary>
internal sealed class ValidatedTokens
{
    /// <summary>The longest a validation is reused before the token is checked again in full.</summary>
    internal static readonly TimeSpan LongestReuse = TimeSpan.FromMinutes(5);

    private const int Capacity = 10_000;

    private readonly ConcurrentDictionary<UInt128, Validated> entries = new();

    /// <summary>Answers the request from a validation made earlier, when one still holds (the bearer handler's message-received hook).</summary>
    public Task ReuseAsync(MessageReceivedContext context)
    {
        if (Key(context.Request.Headers.Authorization.ToString()) is { } key && entries.TryGetValue(key, out var validated))
        {
            if (Now(context.Options) < validated.ReuseUntil)
            {
                // A copy: claims transformations may add to the principal they are given.
                context.Principal = validated.Principal.Clone();
                context.Success();
            }
            else
            {
                entries.TryRemove(KeyValuePair.Create(key, validated));
            }
        }

        return Task.CompletedTask;
    }

    /// <summary>Remembers a token the bearer handler has just validated in full (its token-validated hook).</summary>
    public Task RememberAsync(TokenValidatedContext context)
    {
        var now = Now(context.Options);
        var reuseUntil = context.SecurityToken.ValidTo == DateTime.MinValue
            ? now
            : new DateTimeOffset(DateTime.SpecifyKind(context.SecurityToken.ValidTo, DateTimeKind.Utc));
        if (reuseUntil > now + LongestReuse)
            reuseUntil = now + LongestReuse;
        if (reuseUntil <= now || context.Principal is not { } principal || Key(context.Request.Headers.Authorization.ToString()) is not { } key)
            return Task.CompletedTask;

        if (entries.Count >= Capacity)
        {
            foreach (var (stale, entry) in entries)
            {
                if (entry.ReuseUntil <= now)
                    entries.TryRemove(stale, out _);
            }

            if (entries.Count >= Capacity)
                return Task.CompletedTask;
        }

        entries[key] = new Validated(principal.Clone(), reuseUntil);
        return Task.CompletedTask;
    }

    private static DateTimeOffset Now(JwtBearerOptions options) => (options.TimeProvider ?? TimeProvider.System).GetUtcNow();

    private static UInt128? Key(string header)
    {
        const string Bearer = "Bearer ";
        if (!header.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase))
            return null;
        var token = header.AsSpan(Bearer.Length).Trim();
        if (token.IsEmpty)
            return null;
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var length = Encoding.UTF8.GetMaxByteCount(token.Length);
        var bytes = length <= 4096 ? stackalloc byte[length] : new byte[length];
        SHA256.HashData(bytes[..Encoding.UTF8.GetBytes(token, bytes)], hash);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(hash);
    }

    private sealed record Validated(ClaimsPrincipal Principal, DateTimeOffset ReuseUntil);
}
