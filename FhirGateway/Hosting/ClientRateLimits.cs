using System.Globalization;
using System.Threading.RateLimiting;
using Health.FhirGateway.Errors;
using Hl7.Fhir.Model;

namespace Health.FhirGateway.Hosting;

/// <summary>
/// Per-client rate limits on what users call (<c>/fhir</c>, <c>/portal</c>): a token bucket per
/// token subject, or per address for anonymous calls. Member-to-member and operator routes are not
/// limited here; they are guarded by certificates and loopback. A refused call gets 429 with an
/// OperationOutcome and <c>Retry-After</c>.
/// </summary>
public static class ClientRateLimits
{
    /// <summary>Adds the limiter; <paramref name="perSecond"/> of 0 or less turns it off.</summary>
    public static IServiceCollection AddClientRateLimits(this IServiceCollection services, int perSecond) => services.AddRateLimiter(options =>
    {
        options.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
        {
            var path = context.Request.Path;
            if (perSecond <= 0 || !(path.StartsWithSegments("/fhir", StringComparison.Ordinal) || path.StartsWithSegments("/portal", StringComparison.Ordinal)))
                return RateLimitPartition.GetNoLimiter("unlimited");
            var client = context.User.FindFirst("sub")?.Value is { } subject ? "sub:" + subject : "ip:" + context.Connection.RemoteIpAddress;
            return RateLimitPartition.GetTokenBucketLimiter(client, _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = perSecond,
                TokensPerPeriod = int.Max(1, perSecond / 10),
                ReplenishmentPeriod = TimeSpan.FromMilliseconds(100),
                QueueLimit = 0,
                AutoReplenishment = true,
            });
        });
        options.OnRejected = async (rejected, token) =>
        {
            rejected.HttpContext.Response.Headers.RetryAfter = "1";
            await OperationOutcomeHandler.WriteAsync(rejected.HttpContext, StatusCodes.Status429TooManyRequests, OperationOutcome.IssueType.Throttled,
                string.Create(CultureInfo.InvariantCulture, $"More than {perSecond} requests a second from this client; retry after a second."), token).ConfigureAwait(false);
        };
    });
}
