using System.Net;

namespace Health.Cluster.Tests.Fhir;

/// <summary>A member removed by governance takes its clinicians' access with it.</summary>
public sealed class RemovedMemberTests
{
    [SyntheaFact]
    public async Task Clinicians_of_a_removed_member_are_denied_what_the_patient_granted()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var token = timeout.Token;
        using var cluster = new LedgerCluster();
        try
        {
            await cluster.WaitForLeaderAsync(token);
            var custodian = cluster.Nodes[0];
            var patient = await cluster.IngestFirstPatientAsync(custodian, token);
            var patientToken = await cluster.MintTokenAsync("--role", "patient", "--patient", patient);
            using (var grant = await cluster.SendFhirAsync(HttpMethod.Post, custodian, "Consent", patientToken, ConsentTests.ConsentJson(patient, "node3"), token))
                Assert.Equal(HttpStatusCode.Created, grant.StatusCode);

            var clinician = await cluster.MintTokenAsync("--role", "clinician", "--org", "node3", "--practitioner", "p-node3");
            using (var allowed = await cluster.SendFhirAsync(HttpMethod.Get, custodian, $"Patient/{patient}", clinician, null, token))
                Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);

            await cluster.ProposeAndApproveAsync("remove", "node3", string.Empty, approvals: 2, token);

            using var denied = await cluster.SendFhirAsync(HttpMethod.Get, custodian, $"Patient/{patient}", clinician, null, token);
            Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
            Assert.Contains("removed from the consortium", await denied.Content.ReadAsStringAsync(token), StringComparison.Ordinal);
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(cluster.Diagnostics(), e);
        }
    }
}
