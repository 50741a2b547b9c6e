using Health.Consent.Policy;
using Health.Consent.Projection;
using Health.Ledger.Entries;
using Health.Ledger.Storage;

namespace Health.Consent.Tests.Projection;

public sealed class ConsentProjectionTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("consent-projection-").FullName;
    private readonly ConsentProjection projection = new();
    private readonly LedgerStore store;
    private long index;

    public ConsentProjectionTests() => store = new LedgerStore(Path.Combine(directory, "ledger.db"), [projection]);

    private long Apply(EntryKind kind, long time, params (string Name, string Value)[] fields)
    {
        var entry = new LedgerEntry(++index, time, LedgerEntry.GenesisHash, kind.Name, fields.ToDictionary(f => f.Name, f => f.Value));
        using var connection = store.OpenReader();
        using var transaction = connection.BeginTransaction();
        projection.Apply(entry, connection, transaction);
        transaction.Commit();
        return entry.Index;
    }

    private long Request(long time, string organization = "node2") => Apply(ConsentEntryKinds.AccessRequested, time,
        ("requester", "Practitioner/p1"), ("organization", organization), ("custodian", "node1"), ("patientKey", "pk"),
        ("scope", "Observation"), ("purpose", "TREAT"), ("interaction", "read"));

    [Fact]
    public void Revoked_grant_denies_every_later_request()
    {
        var grant = ProvisionJson.Write(ConsentProvision.Of(ProvisionType.Permit) with { Actors = ["Organization/node2"] });
        var before = Request(10);
        Apply(ConsentEntryKinds.ConsentGranted, 20, ("patientKey", "pk"), ("consentId", "c1"), ("provision", grant));
        var permitted = Request(30);
        var revoke = Apply(ConsentEntryKinds.ConsentRevoked, 40, ("patientKey", "pk"), ("consentId", "c1"));
        var after = Request(50);

        var ledger = new ConsentLedger(store);
        Assert.False(ledger.Access(before)!.Decision.Permitted);
        Assert.Equal("c1", ledger.Access(permitted)!.Decision.ConsentId);
        Assert.True(ledger.Access(permitted)!.Decision.Permitted);
        Assert.False(ledger.Access(after)!.Decision.Permitted);
        var record = Assert.Single(ledger.GrantsOf("pk"));
        Assert.Equal(revoke, record.RevokedIndex);
        Assert.Equal([after, permitted, before], ledger.AccessesOf("pk").Select(a => a.Index));
    }

    [Fact]
    public void Grant_with_malformed_provisions_never_applies_and_apply_does_not_fail()
    {
        Apply(ConsentEntryKinds.ConsentGranted, 20, ("patientKey", "pk"), ("consentId", "c1"), ("provision", "{\"type\":"));
        Assert.False(new ConsentLedger(store).Access(Request(30))!.Decision.Permitted);
        Assert.Null(Assert.Single(new ConsentLedger(store).GrantsOf("pk")).Provision);
    }

    [Fact]
    public void Grant_of_another_patients_consent_id_cannot_take_it_over()
    {
        var grant = ProvisionJson.Write(ConsentProvision.Of(ProvisionType.Permit));
        Apply(ConsentEntryKinds.ConsentGranted, 20, ("patientKey", "pk"), ("consentId", "c1"), ("provision", ProvisionJson.Write(ConsentProvision.Of(ProvisionType.Deny))));
        Apply(ConsentEntryKinds.ConsentGranted, 21, ("patientKey", "other"), ("consentId", "c1"), ("provision", grant));
        Assert.False(new ConsentLedger(store).Access(Request(30, organization: "node1"))!.Decision.Permitted);
    }

    [Fact]
    public void Locators_list_each_custodian_once()
    {
        foreach (var custodian in new[] { "node2", "node1", "node2" })
            Apply(ConsentEntryKinds.RecordsLocated, 5, ("patientKey", "pk"), ("custodian", custodian), ("contentHash", "00"));
        Assert.Equal(["node1", "node2"], new ConsentLedger(store).CustodiansOf("pk"));
    }

    public void Dispose()
    {
        store.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(directory, recursive: true);
    }
}
