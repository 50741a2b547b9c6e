using System.Net;
using System.Net.Http.Headers;

namespace Health.Cluster.Tests.Fhir;

/// <summary>The FHIR tests share one loaded cluster: ingesting every bundle once is the expensive part.</summary>
[CollectionDefinition(Name)]
public sealed class LoadedClusterCollection : ICollectionFixture<LoadedCluster>
{
    public const string Name = "Loaded cluster";
}

/// <summary>A three-node cluster with every Synthea bundle ingested at node1; shared by the FHIR tests.</summary>
public sealed class LoadedCluster : IAsyncLifetime
{
    /// <summary>Whether to ingest the sample bundles (a test that changes records starts empty).</summary>
    public bool LoadSamples { get; init; } = true;

    public LedgerCluster Cluster { get; } = new();

    public NodeProcess Custodian => Cluster.Nodes[0];

    public string OperatorToken { get; private set; } = string.Empty;

    public string ClinicianToken { get; private set; } = string.Empty;

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await Cluster.WaitForLeaderAsync(timeout.Token);
        OperatorToken = await Cluster.MintTokenAsync("--role", "operator");
        ClinicianToken = await Cluster.MintTokenAsync("--role", "clinician", "--org", "node1");
        Cluster.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ClinicianToken);
        if (SyntheaData.Folder is null || !LoadSamples)
            return;
        foreach (var file in SyntheaData.OrganizationAndPractitionerBundles.Concat(SyntheaData.PatientBundles))
        {
            using var response = await PostBundleAsync(File.ReadAllBytes(file), timeout.Token);
            if (response.StatusCode != HttpStatusCode.OK)
                throw new InvalidOperationException($"{Path.GetFileName(file)}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(timeout.Token)}");
        }
    }

    public Task<HttpResponseMessage> PostBundleAsync(byte[] body, CancellationToken token, string mediaType = "application/fhir+json")
        => PostBundleWithTokenAsync(body, OperatorToken, token, mediaType);

    public async Task<HttpResponseMessage> PostBundleWithTokenAsync(byte[] body, string bearer, CancellationToken token, string mediaType = "application/fhir+json")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(Custodian.HttpUrl, "/fhir")) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return await Cluster.Client.SendAsync(request, token);
    }

    public Task DisposeAsync()
    {
        Cluster.Dispose();
        return Task.CompletedTask;
    }
}
