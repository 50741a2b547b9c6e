using System.Net;
using System.Text.RegularExpressions;

namespace Health.Cluster.Tests;

/// <summary>A node configured for Microsoft Entra ID whose identity provider cannot be reached.</summary>
public sealed partial class IdentityProviderTests
{
    [Fact]
    public async Task Organisation_sign_in_answers_503_when_the_identity_provider_is_unreachable()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var token = timeout.Token;
        var root = Directory.CreateTempSubdirectory("idp-").FullName;
        var (http, raft, closed) = (NodeProcess.FreePort(), NodeProcess.FreePort(), NodeProcess.FreePort());
        var node = new NodeProcess("node1", new Uri($"http://127.0.0.1:{http}"), Path.Combine(root, "node1"), [$"node1=127.0.0.1:{raft}=http://127.0.0.1:{http}"], []);
        node.Environment["AzureAd__Instance"] = $"https://127.0.0.1:{closed}/";
        node.Environment["AzureAd__TenantId"] = "contoso.example";
        node.Environment["AzureAd__ClientId"] = "00000000-0000-0000-0000-000000000001";
        node.Start();
        try
        {
            using var client = new HttpClient(new SocketsHttpHandler { UseCookies = true, AllowAutoRedirect = false });
            string form = string.Empty;
            for (var attempt = 0; attempt < 100 && form.Length == 0; attempt++)
            {
                try
                {
                    form = await client.GetStringAsync(new Uri(node.HttpUrl, "/portal/sign-in"), token);
                }
                catch (HttpRequestException)
                {
                    node.ThrowIfCrashed();
                    await Task.Delay(100, token);
                }
            }

            var antiforgery = AntiforgeryField().Match(form).Groups[1].Value;
            Assert.NotEmpty(antiforgery);
            using var post = new FormUrlEncodedContent([new("__RequestVerificationToken", antiforgery)]);
            using var response = await client.PostAsync(new Uri(node.HttpUrl, "/portal/sign-in?handler=Organisation"), post, token);
            var body = await response.Content.ReadAsStringAsync(token);
            Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode}: {body}");
            Assert.Contains("OperationOutcome", body, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", body, StringComparison.Ordinal);
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(node.Output, e);
        }
        finally
        {
            node.Dispose();
            Directory.Delete(root, recursive: true);
        }
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\"[^>]*value=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryField();
}
