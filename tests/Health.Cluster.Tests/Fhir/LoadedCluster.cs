using System.Net;
using System.Net.Http.Headers;

namespace Health.Cluster.Tests.Fhir;

/// <summary>A three-node cluster with every Synthea bundle ingested at node1; shared by the FHIR tests.</summary>
public sealed class LoadedCluster : IAsyncLifetime
{
    public LedgerCluster Cluster { get; } = new();

    public NodeProcess Custodian => Cluster.Nodes[0];

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await Cluster.WaitForLeaderAsync(timeout.Token);
        if (SyntheaData.Folder is null)
            return;
        foreach (var file in SyntheaData.OrganizationAndPractitionerBundles.Concat(SyntheaData.PatientBundles))
        {
            using var response = await PostBundleAsync(File.ReadAllBytes(file), timeout.Token);
            if (response.StatusCode != HttpStatusCode.OK)
                throw new InvalidOperationException($"{Path.GetFileName(file)}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(timeout.Token)}");
        }
    }

    public async Task<HttpResponseMessage> PostBundleAsync(byte[] body, CancellationToken token, string mediaType = "application/fhir+json")
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        return await Cluster.Client.PostAsync(new Uri(Custodian.HttpUrl, "/fhir"), content, token);
    }

    public Task DisposeAsync()
    {
        Cluster.Dispose();
        return Task.CompletedTask;
    }
}
