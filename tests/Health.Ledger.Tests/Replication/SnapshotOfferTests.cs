using DotNext.IO;
using Health.Ledger.Replication;

namespace Health.Ledger.Tests.Replication;

/// <summary>How a snapshot tells that members are asking for it, which keeps newer marks back.</summary>
public sealed class SnapshotOfferTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    [Fact]
    public void A_mark_nobody_asked_for_is_not_in_demand_and_one_asked_for_is_until_the_longest_hold()
    {
        var copies = 0;
        var offer = new SnapshotOffer(new LedgerSnapshot(null, 128, 2), "node1", new Uri("http://127.0.0.1:1/"), () => copies++);
        Assert.False(offer.IsInDemand(Window, TimeSpan.FromMinutes(5)));

        // Asked for as DotNext's leader does: refused while there is no copy, and a copy requested.
        Assert.Throws<SnapshotNotReadyException>(() => ((IDataTransferObject)offer).Length);
        Assert.Equal(1, copies);
        Assert.True(offer.IsInDemand(Window, TimeSpan.FromMinutes(5)));

        // Held no longer than the longest hold, however often it is asked for.
        Assert.False(offer.IsInDemand(Window, TimeSpan.Zero));
        Assert.False(offer.IsInDemand(TimeSpan.Zero, TimeSpan.FromMinutes(5)));
    }
}
