using Health.Consent.Policy;

namespace Health.FhirGateway.Portal;

/// <summary>Says what a grant allows in plain words, for the patient.</summary>
public static class GrantWording
{
    /// <summary>One sentence for a provision tree.</summary>
    public static string Describe(ConsentProvision? provision)
    {
        if (provision is null)
            return "This consent could not be read and allows nothing.";
        var verb = provision.Type == ProvisionType.Permit ? "Allows" : "Forbids";
        var who = provision.Actors.Count == 0 ? "everyone" : string.Join(" and ", provision.Actors.Select(Actor));
        var what = provision.Classes.Count == 0 ? "all your records" : "your " + string.Join(", ", provision.Classes) + " records";
        var why = provision.Purposes.Count == 0 ? "for any purpose" : "for " + string.Join(" or ", provision.Purposes.Select(p => PurposeOfUse.Known.GetValueOrDefault(p, p)));
        var until = provision.End is { } end ? $", until {DateTimeOffset.FromUnixTimeMilliseconds(end):yyyy-MM-dd}" : string.Empty;
        var exceptions = provision.Provisions.Count == 0 ? string.Empty : $" ({provision.Provisions.Count} exception{(provision.Provisions.Count == 1 ? "" : "s")})";
        return $"{verb} {who} to read {what} {why}{until}{exceptions}.";
    }

    private static string Actor(string reference) => reference.StartsWith("Organization/", StringComparison.Ordinal)
        ? $"organisation {reference["Organization/".Length..]}"
        : $"clinician {reference[(reference.IndexOf('/', StringComparison.Ordinal) + 1)..]}";
}
