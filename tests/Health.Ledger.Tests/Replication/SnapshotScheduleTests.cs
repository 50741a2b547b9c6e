using Health.Ledger.Replication;

namespace Health.Ledger.Tests.Replication;

public sealed class SnapshotScheduleTests
{
    [Theory]
    [InlineData(49, 50, 1_000, 0, false)]            // too few Raft entries since the last snapshot
    [InlineData(50, 50, 1_000, 0, true)]             // the first snapshot of a ledger
    [InlineData(50, 50, 1_999, 1_000, false)]        // not yet doubled
    [InlineData(50, 50, 2_000, 1_000, true)]         // doubled
    [InlineData(5_000, 2_048, 1_900_000, 1_000_000, false)] // a large ledger waits for as many entries again
    [InlineData(5_000, 2_048, 2_000_000, 1_000_000, true)]
    public void A_snapshot_waits_for_the_interval_and_for_the_ledger_to_double(long raftSinceLast, long interval, long treeSize, long treeSizeAtLast, bool due)
        => Assert.Equal(due, LedgerStateMachine.IsSnapshotDue(raftSinceLast, interval, treeSize, treeSizeAtLast));
}
