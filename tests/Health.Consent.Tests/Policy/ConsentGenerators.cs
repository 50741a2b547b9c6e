using FsCheck;
using FsCheck.Fluent;
using Health.Consent.Policy;

namespace Health.Consent.Tests.Policy;

/// <summary>
/// Grants and requests over small domains (three organisations, three practitioners, a few
/// purposes, types, labels and times), so generated grants often apply to generated requests.
/// </summary>
public static class ConsentGenerators
{
    public static readonly string[] Organizations = ["node1", "node2", "node3"];
    public static readonly string[] Practitioners = ["Practitioner/p1", "Practitioner/p2", "Practitioner/p3"];
    public static readonly string[] Purposes = ["TREAT", "ETREAT", "HPAYMT", "HRESCH"];
    public static readonly string[] Types = ["Observation", "Condition", "Encounter"];
    public static readonly string[] Labels = ["PSY", "HIV", "ETH"];

    private static Gen<string[]> SubsetOf(string[] values)
        => Gen.SubListOf(values).Select(l => l.ToArray());

    private static Gen<long?> OptionalTime()
        => Gen.OneOf(Gen.Constant<long?>(null), Gen.Choose(0, 100).Select(t => (long?)t));

    private static Gen<ConsentProvision> Provision(int depth) =>
        from type in Gen.Elements(ProvisionType.Permit, ProvisionType.Deny)
        from actors in Gen.Frequency((2, Gen.Constant(Array.Empty<string>())), (3, SubsetOf([.. Organizations.Select(o => $"Organization/{o}"), .. Practitioners])))
        from purposes in Gen.Frequency((2, Gen.Constant(Array.Empty<string>())), (1, SubsetOf(Purposes)))
        from classes in Gen.Frequency((3, Gen.Constant(Array.Empty<string>())), (1, SubsetOf(Types)))
        from labels in Gen.Frequency((4, Gen.Constant(Array.Empty<string>())), (1, SubsetOf(Labels)))
        from start in OptionalTime()
        from end in OptionalTime()
        from nested in depth >= 3 ? Gen.Constant(Array.Empty<ConsentProvision>()) : Gen.Choose(0, 2).SelectMany(n => Gen.ArrayOf(Provision(depth + 1), n))
        select new ConsentProvision(type, actors, purposes, classes, labels, start, end, nested);

    public static Arbitrary<ConsentGrant> Grants() => Arb.From(
        from id in Gen.Choose(1, 50)
        from provision in Provision(1)
        select new ConsentGrant($"consent-{id}", "patient-key", provision, id));

    public static Arbitrary<AccessRequest> Requests() => Arb.From(
        from requester in Gen.Elements(Practitioners)
        from organization in Gen.Elements(Organizations)
        from custodian in Gen.Elements(Organizations)
        from scope in Gen.Elements([.. Types, AccessRequest.AllTypes])
        from purpose in Gen.Elements(Purposes)
        from breakGlass in Gen.Frequency((9, Gen.Constant(false)), (1, Gen.Constant(true)))
        from time in Gen.Choose(0, 100)
        select new AccessRequest(requester, organization, custodian, "patient-key", scope, purpose, breakGlass, time));
}
