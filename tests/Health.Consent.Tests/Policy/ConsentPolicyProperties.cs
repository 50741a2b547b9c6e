using FsCheck;
using FsCheck.Xunit;
using Health.Consent.Policy;

namespace Health.Consent.Tests.Policy;

[Properties(Arbitrary = [typeof(ConsentGenerators)], MaxTest = 500)]
public class ConsentPolicyProperties
{
    [Property]
    public bool Deny_that_applies_wins_over_every_permit(ConsentGrant[] grants, AccessRequest request)
    {
        var deny = new ConsentGrant("consent-deny", request.PatientKey,
            ConsentProvision.Of(ProvisionType.Deny) with { Actors = [$"Organization/{request.Organization}"] }, 99);
        var decision = ConsentPolicy.Decide([.. grants, deny], request);
        return decision.Permitted == IsBreakGlass(request);
    }

    [Property]
    public bool Expired_grant_changes_nothing(ConsentGrant[] grants, ConsentGrant expired, AccessRequest request)
    {
        var ended = expired with { ConsentId = "consent-expired", Provision = expired.Provision with { End = request.Time - 1 } };
        return Same(ConsentPolicy.Decide(grants, request), ConsentPolicy.Decide([.. grants, ended], request));
    }

    [Property]
    public bool Expired_grants_alone_never_permit_another_organisation(ConsentGrant[] grants, AccessRequest request)
    {
        var expired = grants.Select(g => g with { Provision = g.Provision with { End = request.Time - 1 } }).ToArray();
        var stranger = request with { Custodian = "another-custodian" };
        return ConsentPolicy.Decide(expired, stranger).Permitted == IsBreakGlass(stranger);
    }

    [Property]
    public bool Revoking_a_grant_without_denies_never_widens_access(ConsentGrant[] grants, ConsentGrant revoked, AccessRequest request)
    {
        if (HasDeny(revoked.Provision))
            return true;
        // Consent ids are unique on the ledger: the other grants never share the revoked one's.
        var others = grants.Where(g => g.ConsentId != revoked.ConsentId).ToArray();
        var before = ConsentPolicy.Decide([.. others, revoked], request);
        var after = ConsentPolicy.Decide(others, request);
        return !after.Permitted || before.Permitted;
    }

    [Property]
    public bool Decision_does_not_depend_on_the_order_grants_are_read(ConsentGrant[] grants, AccessRequest request, int seed)
    {
        var unique = grants.DistinctBy(g => g.ConsentId).ToArray();
        var shuffled = unique.ToArray();
        new Random(seed).Shuffle(shuffled);
        return Same(ConsentPolicy.Decide(unique, request), ConsentPolicy.Decide(shuffled, request));
    }

    [Property]
    public bool Break_glass_is_permitted_and_flagged(ConsentGrant[] grants, AccessRequest request)
    {
        var emergency = request with { Purpose = PurposeOfUse.EmergencyTreatment, BreakGlass = true };
        var decision = ConsentPolicy.Decide(grants, emergency);
        return decision.Permitted && decision.BreakGlass;
    }

    [Property]
    public bool Without_grants_only_the_custodians_own_treatment_is_permitted(AccessRequest request)
    {
        var decision = ConsentPolicy.Decide([], request);
        var expected = IsBreakGlass(request) || (request.Organization == request.Custodian && request.Purpose == PurposeOfUse.Treatment);
        return decision.Permitted == expected && decision.ConsentId is null;
    }

    [Property]
    public bool A_grant_that_permits_names_itself_as_the_decider(ConsentGrant[] grants, AccessRequest request)
    {
        var decision = ConsentPolicy.Decide(grants, request);
        return decision.ConsentId is null || grants.Any(g => g.ConsentId == decision.ConsentId);
    }

    private static bool IsBreakGlass(AccessRequest request) => request.BreakGlass && request.Purpose == PurposeOfUse.EmergencyTreatment;

    private static bool HasDeny(ConsentProvision provision) => provision.Type == ProvisionType.Deny || provision.Provisions.Any(HasDeny);

    private static bool Same(ConsentDecision a, ConsentDecision b)
        => a.Permitted == b.Permitted && a.ConsentId == b.ConsentId && a.BreakGlass == b.BreakGlass && a.Reason == b.Reason
            && a.WithheldLabels.SequenceEqual(b.WithheldLabels);
}
