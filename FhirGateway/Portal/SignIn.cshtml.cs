using System.Security.Claims;
using Health.FhirGateway.Auth;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;

namespace Health.FhirGateway.Portal;

/// <summary>
/// The offline sign-in of the demo: a patient pastes a patient token from the node's dev issuer;
/// it is validated exactly like a bearer token and exchanged for the portal's cookie.
/// </summary>
public sealed class SignInModel(IOptionsMonitor<JwtBearerOptions> bearerOptions, IAuthenticationSchemeProvider schemes) : PageModel
{
    /// <summary>Whether the organisation's OpenID Connect sign-in is configured.</summary>
    public bool OrganisationSignIn { get; private set; }

    /// <summary>Why the last attempt failed, or null.</summary>
    public string? Error { get; private set; }

    /// <summary>Shows the form.</summary>
    public async Task OnGetAsync() => OrganisationSignIn = await schemes.GetSchemeAsync(AuthenticationSetup.PortalOpenIdScheme).ConfigureAwait(false) is not null;

    /// <summary>Starts the organisation's OpenID Connect sign-in.</summary>
    public async Task<IActionResult> OnPostOrganisationAsync()
        => await schemes.GetSchemeAsync(AuthenticationSetup.PortalOpenIdScheme).ConfigureAwait(false) is null
            ? NotFound()
            : Challenge(new AuthenticationProperties { RedirectUri = "/portal" }, AuthenticationSetup.PortalOpenIdScheme);

    /// <summary>Validates the token and signs the patient in.</summary>
    public async Task<IActionResult> OnPostAsync(string? token)
    {
        var parameters = bearerOptions.Get(AuthenticationSetup.DevScheme).TokenValidationParameters;
        var result = string.IsNullOrWhiteSpace(token) || token.Length > 8192
            ? null
            : await new JsonWebTokenHandler().ValidateTokenAsync(token.Trim(), parameters).ConfigureAwait(false);
        var access = result is { IsValid: true } ? SmartAccess.From(new ClaimsPrincipal(result.ClaimsIdentity)) : null;
        if (access is not { Patient: { } patient } || !access.Roles.Contains("patient"))
        {
            Error = "That token was not accepted: it must be a valid, unexpired patient token.";
            OrganisationSignIn = await schemes.GetSchemeAsync(AuthenticationSetup.PortalOpenIdScheme).ConfigureAwait(false) is not null;
            Response.StatusCode = StatusCodes.Status401Unauthorized;
            return Page();
        }

        var identity = new ClaimsIdentity([new Claim("sub", access.Subject), new Claim("patient", patient)], AuthenticationSetup.PortalScheme, "sub", "role");
        await HttpContext.SignInAsync(AuthenticationSetup.PortalScheme, new ClaimsPrincipal(identity)).ConfigureAwait(false);
        return Redirect("/portal");
    }
}
