namespace Health.FhirGateway.Portal;

/// <summary>
/// The patient consent portal at <c>/portal</c>: server-rendered Razor Pages without scripts,
/// antiforgery on every form (Razor Pages validates it on every POST), and a strict content
/// security policy with the other security headers on every portal response.
/// </summary>
public static class PortalSetup
{
    private const string ContentSecurityPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    /// <summary>Adds the portal's pages.</summary>
    public static IServiceCollection AddPortal(this IServiceCollection services)
    {
        services.AddRazorPages(options => options.RootDirectory = "/Portal");
        services.AddAntiforgery(options =>
        {
            options.Cookie.Name = "health-portal-antiforgery";
            options.Cookie.SameSite = SameSiteMode.Strict;
            options.Cookie.HttpOnly = true;
        });
        return services;
    }

    /// <summary>Adds the security headers to portal responses; call before routing runs the pages.</summary>
    public static IApplicationBuilder UsePortalSecurityHeaders(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        if (context.Request.Path.StartsWithSegments("/portal", StringComparison.Ordinal))
        {
            var headers = context.Response.Headers;
            headers.ContentSecurityPolicy = ContentSecurityPolicy;
            headers.XFrameOptions = "DENY";
            headers.XContentTypeOptions = "nosniff";
            headers["Referrer-Policy"] = "no-referrer";
            headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()";
            headers.CacheControl = "no-store";
        }

        await next(context).ConfigureAwait(false);
    });

    /// <summary>Maps the pages and the style sheet.</summary>
    public static IEndpointRouteBuilder MapPortal(this IEndpointRouteBuilder app)
    {
        app.MapGet("/portal/portal.css", () => Results.Text(StyleSheet, "text/css"));
        app.MapRazorPages();
        return app;
    }

    private const string StyleSheet = """
        body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 0 auto; padding: 1rem; line-height: 1.5; color: #1a1a1a; }
        .skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; }
        .brand { font-weight: 600; color: #0b5394; }
        label { display: block; margin-top: .5rem; } fieldset label { display: inline-block; margin-right: 1rem; }
        input, textarea, button { font: inherit; } textarea { width: 100%; }
        button { margin-top: .75rem; padding: .4rem 1rem; } :focus-visible { outline: 3px solid #0b5394; outline-offset: 2px; }
        .inline { display: inline; } .meta { display: block; color: #555; font-size: .9rem; }
        .past { color: #666; } .notice { background: #e6f4ea; padding: .5rem; } .error { background: #fce8e6; padding: .5rem; }
        table { border-collapse: collapse; width: 100%; } th, td { border-bottom: 1px solid #ddd; padding: .3rem; text-align: left; }
        tr.denied td { color: #5f6368; } tr.break-glass td { color: #b00020; font-weight: 600; }
        """;
}
