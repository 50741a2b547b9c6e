using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Health.Cluster.Tests;
using Health.Cluster.Tests.Fhir;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;

namespace Health.Portal.Tests;

/// <summary>The consent portal in a real browser (Debian chromium) against three node processes.</summary>
public sealed class ConsentPortalTests : IDisposable
{
    private readonly LedgerCluster cluster = new();
    private readonly string profile = Directory.CreateTempSubdirectory("portal-chromium-").FullName;
    private readonly string screenshots = ScreenshotFolder();
    private ChromeDriver? browser;

    [ChromiumFact]
    public async Task Patient_grants_then_revokes_and_sees_both_accesses()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var token = timeout.Token;
        await cluster.WaitForLeaderAsync(token);
        var node = cluster.Nodes[0];
        var patient = await IngestOnePatientAsync(node, token);
        var patientToken = await cluster.MintTokenAsync("--role", "patient", "--patient", patient);
        var clinician = await cluster.MintTokenAsync("--role", "clinician", "--org", "clinic-portal", "--practitioner", "p-portal");
        async Task<HttpStatusCode> ClinicianReadsAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(node.HttpUrl, $"/fhir/Patient/{patient}"));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", clinician);
            using var response = await cluster.Client.SendAsync(request, token);
            return response.StatusCode;
        }

        browser = StartBrowser();
        var wait = new WebDriverWait(browser, TimeSpan.FromSeconds(20));
        browser.Navigate().GoToUrl(new Uri(node.HttpUrl, "/portal"));
        wait.Until(b => b.Url.Contains("/portal/sign-in", StringComparison.Ordinal));
        browser.FindElement(By.Id("token")).SendKeys("not a token");
        browser.FindElement(By.Id("sign-in")).Click();
        Assert.Contains("not accepted", wait.Until(b => b.FindElement(By.Id("sign-in-error"))).Text, StringComparison.Ordinal);
        Screenshot("1-sign-in-refused");

        browser.FindElement(By.Id("token")).SendKeys(patientToken);
        browser.FindElement(By.Id("sign-in")).Click();
        wait.Until(b => b.FindElements(By.Id("custodians")).Count > 0);
        Assert.Contains("node1", browser.FindElement(By.Id("custodians")).Text, StringComparison.Ordinal);
        Screenshot("2-signed-in");

        browser.FindElement(By.Id("organization")).SendKeys("clinic-portal");
        browser.FindElement(By.Id("purpose-TREAT")).Click();
        browser.FindElement(By.Id("grant")).Click();
        Assert.Contains("in force", wait.Until(b => b.FindElement(By.Id("done"))).Text, StringComparison.Ordinal);
        Assert.Contains("organisation clinic-portal", browser.FindElement(By.Id("grant-list")).Text, StringComparison.Ordinal);
        Screenshot("3-granted");

        Assert.Equal(HttpStatusCode.OK, await ClinicianReadsAsync());

        // The grant's confirmation stays on the page until the revoke's answer replaces it: wait for
        // the new one, reading it again if the page is replaced under the read.
        browser.FindElement(By.CssSelector("button.revoke")).Click();
        wait.IgnoreExceptionTypes(typeof(StaleElementReferenceException));
        Assert.True(wait.Until(b => b.FindElement(By.Id("done")).Text.Contains("revoked", StringComparison.Ordinal)));
        Assert.Equal(HttpStatusCode.Forbidden, await ClinicianReadsAsync());

        browser.Navigate().GoToUrl(new Uri(node.HttpUrl, "/portal"));
        var rows = wait.Until(b => b.FindElements(By.CssSelector("#access-history tbody tr")))
            .Where(r => r.Text.Contains("clinic-portal", StringComparison.Ordinal)).Select(r => r.Text).ToList();
        Assert.Equal(2, rows.Count);
        Assert.Contains("Denied", rows[0], StringComparison.Ordinal);
        Assert.Contains("Permitted", rows[1], StringComparison.Ordinal);
        Assert.Contains("Practitioner/p-portal", rows[1], StringComparison.Ordinal);
        Screenshot("4-history");

        await AssertFormsRefuseRequestsWithoutAntiforgeryAsync(node, browser.Manage().Cookies.GetCookieNamed("health-portal")!.Value, token);
    }

    [ChromiumFact]
    public async Task Portal_pages_carry_security_headers()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await cluster.WaitForLeaderAsync(timeout.Token);
        using var response = await cluster.Client.GetAsync(new Uri(cluster.Nodes[0].HttpUrl, "/portal/sign-in"), timeout.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var policy = response.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("default-src 'none'", policy, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", policy, StringComparison.Ordinal);
        Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.False(response.Headers.Contains("Server"), "the response names the server software");
        var html = await response.Content.ReadAsStringAsync(timeout.Token);
        Assert.Contains("__RequestVerificationToken", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
    }

    // A forged cross-site form post carries the victim's cookie but not the antiforgery token.
    private async Task AssertFormsRefuseRequestsWithoutAntiforgeryAsync(NodeProcess node, string cookie, CancellationToken token)
    {
        using var handler = new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false };
        using var client = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(node.HttpUrl, "/portal?handler=Grant"))
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["organization"] = "clinic-forged", ["purposes"] = "TREAT" }),
        };
        request.Headers.Add("Cookie", $"health-portal={cookie}");
        using var response = await client.SendAsync(request, token);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var page = new HttpRequestMessage(HttpMethod.Get, new Uri(node.HttpUrl, "/portal"));
        page.Headers.Add("Cookie", $"health-portal={cookie}");
        using var shown = await client.SendAsync(page, token);
        Assert.DoesNotContain("clinic-forged", await shown.Content.ReadAsStringAsync(token), StringComparison.Ordinal);
    }

    private async Task<string> IngestOnePatientAsync(NodeProcess node, CancellationToken token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(node.HttpUrl, "/fhir"))
        {
            Content = new ByteArrayContent(File.ReadAllBytes(SyntheaData.PatientBundles.First())),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/fhir+json");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await cluster.MintTokenAsync("--role", "operator"));
        using var response = await cluster.Client.SendAsync(request, token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("entry").EnumerateArray()
            .Select(e => e.GetProperty("response").GetProperty("location").GetString()!)
            .First(l => l.StartsWith("Patient/", StringComparison.Ordinal)).Split('/')[1];
    }

    private ChromeDriver StartBrowser()
    {
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(ChromiumFactAttribute.Driver)!, Path.GetFileName(ChromiumFactAttribute.Driver));
        service.HideCommandPromptWindow = true;
        service.SuppressInitialDiagnosticInformation = true;
        var options = new ChromeOptions { BinaryLocation = ChromiumFactAttribute.Browser };
        // The machine's network is closed: Chromium's background services would only fail.
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,2000", $"--user-data-dir={profile}");
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }

    private void Screenshot(string name)
        => browser!.GetScreenshot().SaveAsFile(Path.Combine(screenshots, name + ".png"));

    private static string ScreenshotFolder()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Health.sln")))
            directory = directory.Parent;
        return Directory.CreateDirectory(Path.Combine(directory?.FullName ?? Path.GetTempPath(), "TestResults", "portal-screenshots")).FullName;
    }

    public void Dispose()
    {
        browser?.Quit();
        browser?.Dispose();
        cluster.Dispose();
        Directory.Delete(profile, recursive: true);
    }
}
