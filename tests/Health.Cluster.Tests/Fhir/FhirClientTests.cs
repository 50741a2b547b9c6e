using System.Net;
using System.Net.Http.Headers;
using Hl7.Fhir.Model;
using Hl7.Fhir.Rest;
using Task = System.Threading.Tasks.Task;

namespace Health.Cluster.Tests.Fhir;

[Collection(LoadedClusterCollection.Name)]
public sealed class FhirClientTests(LoadedCluster loaded) : IAsyncLifetime
{
    private HttpClient http = null!;
    private FhirClient client = null!;

    public async Task InitializeAsync()
    {
        var token = await loaded.Cluster.MintTokenAsync("--role", "clinician", "--org", "node1", "--scope", "user/*.cruds");
        http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        client = new FhirClient(new Uri(loaded.Custodian.HttpUrl, "/fhir"), http, new FhirClientSettings { PreferredFormat = ResourceFormat.Json, VerifyFhirVersion = true });
    }

    [Fact]
    public async Task Create_read_update_history_and_delete_through_the_Firely_client()
    {
        var created = await client.CreateAsync(new Patient
        {
            Name = [new HumanName { Family = "Testfamily", Given = ["Ann"] }],
            Gender = AdministrativeGender.Female,
            BirthDate = "1980-02-03",
        });
        Assert.NotNull(created?.Id);
        Assert.Equal("1", created.Meta!.VersionId);

        var read = await client.ReadAsync<Patient>($"Patient/{created.Id}");
        Assert.Equal("Testfamily", read!.Name[0].Family);

        read.BirthDate = "1980-02-04";
        var updated = await client.UpdateAsync(read, versionAware: true);
        Assert.Equal("2", updated!.Meta!.VersionId);

        // An update that names the old version is refused: someone else changed it meanwhile.
        read.Meta!.VersionId = "1";
        var conflict = await Assert.ThrowsAsync<FhirOperationException>(() => client.UpdateAsync(read, versionAware: true));
        Assert.Equal(HttpStatusCode.PreconditionFailed, conflict.Status);

        var found = await client.SearchAsync<Patient>(["family=testfam", "birthdate=1980-02-04"]);
        Assert.Contains(found!.Entry, e => e.Resource?.Id == created.Id);

        var history = await client.HistoryAsync($"Patient/{created.Id}");
        Assert.Equal(2, history!.Entry.Count);

        await client.DeleteAsync($"Patient/{created.Id}");
        var gone = await Assert.ThrowsAsync<FhirOperationException>(() => client.ReadAsync<Patient>($"Patient/{created.Id}"));
        Assert.Equal(HttpStatusCode.Gone, gone.Status);
    }

    [Fact]
    public async Task Capability_statement_is_read_by_the_client()
    {
        var statement = await client.CapabilityStatementAsync();
        Assert.Equal(FHIRVersion.N4_0_1, statement!.FhirVersion);
    }

    public Task DisposeAsync()
    {
        client.Dispose();
        http.Dispose();
        return Task.CompletedTask;
    }
}
