using Health.FhirGateway.Errors;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Identity.Web;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Task = System.Threading.Tasks.Task;

namespace Health.FhirGateway.Auth;

/// <summary>
/// Bearer tokens: Microsoft Entra ID through Microsoft.Identity.Web when an <c>AzureAd</c>
/// configuration section is present, and the node's dev issuer for demos and tests. A token is
/// routed to the scheme of its issuer; a refused token gets 401, <c>WWW-Authenticate</c> and an
/// OperationOutcome.
/// </summary>
public static partial class AuthenticationSetup
{
    /// <summary>The scheme endpoints authenticate with.</summary>
    public const string Scheme = "token";

    /// <summary>The scheme validating the node's dev issuer tokens.</summary>
    public const string DevScheme = "dev-issuer";

    /// <summary>The consent portal's sign-in cookie.</summary>
    public const string PortalScheme = "portal";

    /// <summary>The portal's OpenID Connect sign-in through Microsoft Entra ID, present when an <c>AzureAd</c> section is configured.</summary>
    public const string PortalOpenIdScheme = "portal-oidc";
    private const string EntraScheme = "entra";

    /// <summary>Registers authentication and authorization.</summary>
    public static IServiceCollection AddNodeAuthentication(this IServiceCollection services, IConfiguration configuration, DevTokenIssuer devIssuer)
    {
        var entra = configuration.GetSection("AzureAd");

        // Decided once: the Entra scheme is registered (or not) at start-up, and looking the section
        // up walked the configuration on every request.
        var entraConfigured = entra.Exists();
        var authentication = services.AddAuthentication(Scheme);
        authentication.AddPolicyScheme(Scheme, "Bearer token", options => options.ForwardDefaultSelector =
            context => entraConfigured && !IsDevToken(context) ? EntraScheme : DevScheme);
        authentication.AddJwtBearer(DevScheme, options =>
        {
            options.MapInboundClaims = false;
            options.TokenValidationParameters = new TokenValidationParameters
            {
                ValidIssuer = DevTokenIssuer.Issuer,
                ValidAudience = DevTokenIssuer.Audience,
                IssuerSigningKey = devIssuer.ValidationKey,
                ValidAlgorithms = [SecurityAlgorithms.EcdsaSha256],
                RequireExpirationTime = true,
                RequireSignedTokens = true,
                ClockSkew = TimeSpan.FromSeconds(30),
            };
            var validated = new ValidatedTokens();
            options.Events = new JwtBearerEvents
            {
                OnMessageReceived = validated.ReuseAsync,
                OnTokenValidated = validated.RememberAsync,
                OnAuthenticationFailed = LogRefusal,
                OnChallenge = ChallengeAsync,
            };
        });
        authentication.AddCookie(PortalScheme, options =>
        {
            options.LoginPath = "/portal/sign-in";
            options.LogoutPath = "/portal/sign-out";
            options.AccessDeniedPath = "/portal/sign-in";
            options.Cookie.Name = "health-portal";
            options.Cookie.HttpOnly = true;
            options.Cookie.SameSite = SameSiteMode.Strict;
            options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            options.ExpireTimeSpan = TimeSpan.FromMinutes(30);
            options.SlidingExpiration = true;
        });
        if (entraConfigured)
        {
            authentication.AddMicrosoftIdentityWebApi(entra, jwtBearerScheme: EntraScheme);
            var validated = new ValidatedTokens();
            services.Configure<JwtBearerOptions>(EntraScheme, options =>
            {
                // Microsoft.Identity.Web's own token-validated step (scope and role checks) runs first.
                var (entraReceived, entraValidated) = (options.Events.OnMessageReceived, options.Events.OnTokenValidated);
                options.Events.OnMessageReceived = async context =>
                {
                    await entraReceived(context).ConfigureAwait(false);
                    if (context.Result is null)
                        await validated.ReuseAsync(context).ConfigureAwait(false);
                };
                options.Events.OnTokenValidated = async context =>
                {
                    await entraValidated(context).ConfigureAwait(false);
                    if (context.Result is null)
                        await validated.RememberAsync(context).ConfigureAwait(false);
                };
                options.Events.OnAuthenticationFailed = LogRefusal;
                options.Events.OnChallenge = ChallengeAsync;
            });
            AddPortalOpenId(authentication, services, entra);
        }

        services.AddAuthorization();
        return services;
    }

    // Patients sign in to the portal with the organisation's identity provider; the ID token must
    // carry the patient's id in a "patient" claim (an Entra optional or extension claim), else the
    // sign-in is refused. The result is the same portal cookie the dev sign-in issues.
    private static void AddPortalOpenId(AuthenticationBuilder authentication, IServiceCollection services, IConfigurationSection entra)
    {
        authentication.AddMicrosoftIdentityWebApp(entra, openIdConnectScheme: PortalOpenIdScheme, cookieScheme: null);
        services.Configure<Microsoft.AspNetCore.Authentication.OpenIdConnect.OpenIdConnectOptions>(PortalOpenIdScheme, options =>
        {
            options.SignInScheme = PortalScheme;
            options.CallbackPath = "/portal/signin-oidc";
            var validated = options.Events.OnTokenValidated;
            options.Events.OnTokenValidated = async context =>
            {
                await validated(context).ConfigureAwait(false);
                if (context.Principal?.FindFirst("patient") is null)
                    context.Fail("The identity provider's token names no patient.");
            };
        });
    }

    private static bool IsDevToken(HttpContext context)
    {
        var header = context.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return true;
        try
        {
            return new JsonWebToken(header["Bearer ".Length..].Trim()).Issuer == DevTokenIssuer.Issuer;
        }
        catch (ArgumentException)
        {
            return true;
        }
    }

    private static async Task ChallengeAsync(JwtBearerChallengeContext context)
    {
        context.HandleResponse();
        var missing = string.IsNullOrEmpty(context.Request.Headers.Authorization);
        context.Response.Headers.WWWAuthenticate = missing ? "Bearer" : "Bearer error=\"invalid_token\"";
        await OperationOutcomeHandler.WriteAsync(context.HttpContext, StatusCodes.Status401Unauthorized, OperationOutcome.IssueType.Login,
            missing ? "Send a bearer token." : $"The bearer token was refused: {Refusal(context.AuthenticateFailure)}.", context.HttpContext.RequestAborted).ConfigureAwait(false);
    }

    // The operator sees why a token failed; the token itself, which names its user, is never logged.
    private static Task LogRefusal(AuthenticationFailedContext context)
    {
        var logger = context.HttpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AuthenticationSetup).FullName!);
        LogTokenRefused(logger, context.HttpContext.TraceIdentifier, Refusal(context.Exception), context.Exception.GetType().Name);
        return Task.CompletedTask;
    }

    private static string Refusal(Exception? failure) => failure switch
    {
        SecurityTokenExpiredException => "it has expired",
        SecurityTokenNotYetValidException => "it is not valid yet",
        SecurityTokenNoExpirationException => "it has no expiry",
        SecurityTokenInvalidLifetimeException => "its lifetime is not valid",
        SecurityTokenInvalidAudienceException => "it is for another audience",
        SecurityTokenInvalidIssuerException => "its issuer is not trusted",
        SecurityTokenInvalidAlgorithmException => "its signing algorithm is not accepted",
        SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException => "its signature does not verify with a trusted key",
        SecurityTokenMalformedException or ArgumentException => "it is not a well-formed JWT",
        _ => "its signature, issuer, audience or lifetime is not valid",
    };

    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "Request {RequestId}: a bearer token was refused, {Reason} ({Failure})")]
    private static partial void LogTokenRefused(ILogger logger, string requestId, string reason, string failure);
}
