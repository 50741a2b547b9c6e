using Health.Consent.Policy;

namespace Health.Consent.Tests.Policy;

public class ConsentPolicyTests
{
    private static readonly AccessRequest Request = new("Practitioner/p2", "node2", "node1", "patient-key", "Observation", "TREAT", false, 50);

    private static ConsentGrant Grant(string id, ConsentProvision provision) => new(id, "patient-key", provision, 1);

    private static ConsentProvision Permit(params string[] actors) => ConsentProvision.Of(ProvisionType.Permit) with { Actors = actors };

    [Fact]
    public void Another_organisation_needs_a_grant()
    {
        var decision = ConsentPolicy.Decide([], Request);
        Assert.False(decision.Permitted);
        Assert.Contains("node2", decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Grant_to_the_organisation_permits_and_names_the_consent()
    {
        var decision = ConsentPolicy.Decide([Grant("c1", Permit("Organization/node2"))], Request);
        Assert.True(decision.Permitted);
        Assert.Equal("c1", decision.ConsentId);
    }

    [Fact]
    public void Grant_to_one_practitioner_does_not_permit_a_colleague()
    {
        var grants = new[] { Grant("c1", Permit("Practitioner/p3")) };
        Assert.False(ConsentPolicy.Decide(grants, Request).Permitted);
        Assert.True(ConsentPolicy.Decide(grants, Request with { Requester = "Practitioner/p3" }).Permitted);
    }

    [Fact]
    public void Nested_deny_is_an_exception_to_its_permit()
    {
        var provision = Permit("Organization/node2") with { Provisions = [ConsentProvision.Of(ProvisionType.Deny) with { Purposes = ["HRESCH"] }] };
        Assert.True(ConsentPolicy.Decide([Grant("c1", provision)], Request).Permitted);
        Assert.False(ConsentPolicy.Decide([Grant("c1", provision)], Request with { Purpose = "HRESCH" }).Permitted);
    }

    [Fact]
    public void Base_deny_with_a_nested_permit_permits_only_the_named_actor()
    {
        var provision = ConsentProvision.Of(ProvisionType.Deny) with { Provisions = [Permit("Organization/node2")] };
        Assert.True(ConsentPolicy.Decide([Grant("c1", provision)], Request).Permitted);
        Assert.False(ConsentPolicy.Decide([Grant("c1", provision)], Request with { Organization = "node1" }).Permitted);
    }

    [Fact]
    public void Period_bounds_the_grant()
    {
        var grant = Grant("c1", Permit("Organization/node2") with { Start = 40, End = 60 });
        Assert.True(ConsentPolicy.Decide([grant], Request).Permitted);
        Assert.False(ConsentPolicy.Decide([grant], Request with { Time = 61 }).Permitted);
        Assert.False(ConsentPolicy.Decide([grant], Request with { Time = 39 }).Permitted);
    }

    [Fact]
    public void Permit_of_some_types_does_not_cover_everything()
    {
        var grant = Grant("c1", Permit("Organization/node2") with { Classes = ["Observation"] });
        Assert.True(ConsentPolicy.Decide([grant], Request).Permitted);
        Assert.False(ConsentPolicy.Decide([grant], Request with { Scope = "Condition" }).Permitted);
        Assert.False(ConsentPolicy.Decide([grant], Request with { Scope = AccessRequest.AllTypes }).Permitted);
    }

    [Fact]
    public void Deny_of_a_security_label_withholds_those_records_only()
    {
        var provision = Permit("Organization/node2") with { Provisions = [ConsentProvision.Of(ProvisionType.Deny) with { SecurityLabels = ["PSY"] }] };
        var decision = ConsentPolicy.Decide([Grant("c1", provision)], Request);
        Assert.True(decision.Permitted);
        Assert.Equal(["PSY"], decision.WithheldLabels);
    }

    [Fact]
    public void Patient_can_deny_even_their_custodians_own_clinicians()
    {
        var own = Request with { Organization = "node1" };
        Assert.True(ConsentPolicy.Decide([], own).Permitted);
        Assert.False(ConsentPolicy.Decide([Grant("c1", ConsentProvision.Of(ProvisionType.Deny))], own).Permitted);
    }

    [Fact]
    public void Emergency_purpose_without_a_reason_is_not_break_glass()
    {
        var emergency = Request with { Purpose = PurposeOfUse.EmergencyTreatment };
        Assert.False(ConsentPolicy.Decide([], emergency).Permitted);
        Assert.True(ConsentPolicy.Decide([], emergency with { BreakGlass = true }).BreakGlass);
    }

    [Fact]
    public void Provision_json_round_trips_and_rejects_malformed_trees()
    {
        var provision = Permit("Organization/node2") with { Purposes = ["TREAT"], End = 5, Provisions = [ConsentProvision.Of(ProvisionType.Deny) with { SecurityLabels = ["PSY"] }] };
        var json = ProvisionJson.Write(provision);
        Assert.Equal(json, ProvisionJson.Write(ProvisionJson.TryRead(json)!));
        Assert.Null(ProvisionJson.TryRead("{\"type\":\"permit\"}"));
        Assert.Null(ProvisionJson.TryRead("not json"));
        var deep = ConsentProvision.Of(ProvisionType.Permit);
        for (var i = 0; i < ConsentProvision.MaxDepth; i++)
            deep = deep with { Provisions = [deep] };
        Assert.Null(ProvisionJson.TryRead(ProvisionJson.Write(deep)));
    }
}
