using Health.Consent;
using Health.Consent.Policy;
using Health.FhirGateway.Errors;
using Health.FhirGateway.Records;
using Health.Ledger.Entries;
using Health.Ledger.Replication;
using Hl7.Fhir.Model;
using FhirConsent = Hl7.Fhir.Model.Consent;

namespace Health.FhirGateway.Access;

/// <summary>
/// Puts a patient's consent decisions on the ledger: an active Consent becomes a
/// <c>ConsentGranted</c> entry, an inactive, rejected or deleted one a <c>ConsentRevoked</c> entry.
/// A grant is recorded after the Consent is stored (until then it is not in force); a revoke before
/// the store is touched, so a failure can only leave the grant revoked.
/// </summary>
public sealed class ConsentRecorder(LedgerNode ledger, RecordStore store, TransactionProcessor processor, SearchIndexer indexer, TimeProvider time)
{
    /// <summary>Checks that a Consent can be enforced, before anything is stored.</summary>
    /// <exception cref="RequestFailure">422 for a Consent that cannot be enforced.</exception>
    public static void Validate(FhirConsent consent) => ConsentMapping.ToProvision(consent);

    /// <summary>Records a stored Consent's current state: a grant when active, a revoke otherwise.</summary>
    /// <returns>The ledger index, or null when a draft or proposed consent needs no entry.</returns>
    public async Task<long?> RecordAsync(FhirConsent consent, string owner, CancellationToken token)
    {
        var consentId = consent.Id ?? throw new ArgumentException("The Consent has not been stored.", nameof(consent));
        if (ConsentMapping.IsInForce(consent))
        {
            var provision = ProvisionJson.Write(ConsentMapping.ToProvision(consent));
            return await AppendAsync(ConsentEntryKinds.ConsentGranted, owner, consentId, token, ("provision", provision)).ConfigureAwait(false);
        }

        return consent.Status is FhirConsent.ConsentState.Draft or FhirConsent.ConsentState.Proposed
            ? null
            : await RevokeAsync(consentId, owner, token).ConfigureAwait(false);
    }

    /// <summary>Stores a new active Consent and puts it in force on the ledger.</summary>
    /// <returns>The Consent's id and the ledger index of the grant.</returns>
    /// <exception cref="RequestFailure">422 for a Consent that cannot be enforced.</exception>
    public async Task<(string Id, long Index)> GrantAsync(FhirConsent consent, string owner, CancellationToken token)
    {
        Validate(consent);
        var bundle = new Bundle { Type = Bundle.BundleType.Transaction };
        bundle.Entry.Add(new Bundle.EntryComponent { Resource = consent, Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "Consent" } });
        processor.Process(bundle);
        return (consent.Id!, (await RecordAsync(consent, owner, token).ConfigureAwait(false))!.Value);
    }

    /// <summary>Revokes a stored Consent: the revoke goes on the ledger first, then the Consent's new version says inactive.</summary>
    /// <returns>The ledger index of the revoke.</returns>
    public async Task<long> RevokeStoredAsync(string consentId, string owner, CancellationToken token)
    {
        var index = await RevokeAsync(consentId, owner, token).ConfigureAwait(false);
        if (store.Read("Consent", consentId) is { } stored && Fhir.FhirJson.Parse(stored.Json) is FhirConsent consent && consent.Status == FhirConsent.ConsentState.Active)
        {
            var now = time.GetUtcNow();
            var version = stored.Version + 1;
            consent.Status = FhirConsent.ConsentState.Inactive;
            consent.Meta ??= new Meta();
            consent.Meta.VersionId = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
            consent.Meta.LastUpdated = now;
            var (tokens, dates) = indexer.Index(consent);
            using var writer = store.BeginWrite();
            writer.Write(new StoredResource("Consent", consentId, version, owner, now.ToUnixTimeMilliseconds(), Fhir.FhirJson.ToUtf8(consent)), tokens, dates, createKey: false);
            writer.Commit();
        }

        return index;
    }

    /// <summary>Revokes a consent on the ledger.</summary>
    public Task<long> RevokeAsync(string consentId, string owner, CancellationToken token)
        => AppendAsync(ConsentEntryKinds.ConsentRevoked, owner, consentId, token);

    private async Task<long> AppendAsync(EntryKind kind, string owner, string consentId, CancellationToken token, params (string Name, string Value)[] extra)
    {
        var patientKey = store.PatientKeyOf(owner) ?? throw new RequestFailure(StatusCodes.Status422UnprocessableEntity, OperationOutcome.IssueType.NotFound,
            "The Consent's patient is not registered here.");
        var fields = new Dictionary<string, string> { ["patientKey"] = patientKey, ["consentId"] = consentId };
        foreach (var (name, value) in extra)
            fields[name] = value;
        return (await ledger.AppendAsync(new LedgerCommand(kind.Name, fields), token).ConfigureAwait(false)).Index;
    }
}
