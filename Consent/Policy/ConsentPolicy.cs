namespace Health.Consent.Policy;

/// <summary>
/// The consortium's consent policy, a pure function of the patient's grants in force and the
/// request: no clock, no I/O, so every node that applies the same entry reaches the same decision.
/// </summary>
/// <remarks>
/// In order: an emergency request with a reason (break-glass) is permitted and flagged; a deny that
/// applies wins over every permit; a permit that applies permits; the custodian's own clinicians
/// may read for treatment; everything else is denied (opt-in). A deny limited to security labels
/// withholds the labelled records instead of denying the request. A permit limited to security
/// labels or to resource types never covers a request for every type, so a grant cannot release
/// more than it names.
/// </remarks>
public static class ConsentPolicy
{
    /// <summary>Decides a request against the patient's grants that are not revoked.</summary>
    public static ConsentDecision Decide(IReadOnlyList<ConsentGrant> grants, AccessRequest request)
    {
        if (request.BreakGlass && request.Purpose == PurposeOfUse.EmergencyTreatment)
            return new ConsentDecision(true, "Break-glass: emergency treatment with a stated reason.", null, true, []);

        string? permittedBy = null;
        var withheld = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var grant in grants.OrderBy(g => g.ConsentId, StringComparer.Ordinal))
        {
            if (Evaluate(grant.Provision, request, withheld, depth: 1) is not { } type)
                continue;
            if (type == ProvisionType.Deny)
                return ConsentDecision.Deny($"Consent {grant.ConsentId} denies this access.", grant.ConsentId);
            permittedBy ??= grant.ConsentId;
        }

        if (permittedBy is not null)
            return ConsentDecision.Permit($"Consent {permittedBy} permits this access.", permittedBy, [.. withheld]);
        if (request.Organization == request.Custodian && request.Purpose == PurposeOfUse.Treatment)
            return ConsentDecision.Permit("The custodian's own clinicians may read for treatment.", null, [.. withheld]);
        return ConsentDecision.Deny($"No consent in force permits organisation {request.Organization} for purpose {request.Purpose}.");
    }

    // The type of the deepest provision that applies, or null when the root does not apply.
    // Label-limited denies do not decide; they add to the withheld labels.
    private static ProvisionType? Evaluate(ConsentProvision provision, AccessRequest request, SortedSet<string> withheld, int depth)
    {
        if (depth > ConsentProvision.MaxDepth || !Applies(provision, request))
            return null;
        if (provision.Type == ProvisionType.Deny && provision.SecurityLabels.Count > 0)
        {
            withheld.UnionWith(provision.SecurityLabels);
            return null;
        }

        ProvisionType? decided = provision.Type;
        ProvisionType? nested = null;
        foreach (var child in provision.Provisions)
        {
            if (Evaluate(child, request, withheld, depth + 1) is { } type && nested != ProvisionType.Deny)
                nested = type;
        }

        return nested ?? decided;
    }

    private static bool Applies(ConsentProvision provision, AccessRequest request)
    {
        if (!provision.IsInForceAt(request.Time))
            return false;
        if (provision.Actors.Count > 0 && !provision.Actors.Contains($"Organization/{request.Organization}") && !provision.Actors.Contains(request.Requester))
            return false;
        if (provision.Purposes.Count > 0 && !provision.Purposes.Contains(request.Purpose))
            return false;

        var permit = provision.Type == ProvisionType.Permit;
        if (provision.Classes.Count > 0)
        {
            // A deny of some types covers a request for every type; a permit of some types does not.
            var covered = request.Scope == AccessRequest.AllTypes ? !permit : provision.Classes.Contains(request.Scope);
            if (!covered)
                return false;
        }

        return !(permit && provision.SecurityLabels.Count > 0);
    }
}
