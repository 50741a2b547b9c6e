using Health.Ledger.Replication;

namespace Health.Ledger.Tests.Replication;

public sealed class SnapshotScheduleTests
{
    [Theory]
    [InlineData(49, 50, 1_000, 0, false)]            // too few Raft entries since the last snapshot
    [InlineData(50, 50, 1_000, 0, true)]             // the first snapshot of a ledger
    [InlineData(50, 50, 1_200, 1_000, false)]        // grown by a fifth only
    [InlineData(50, 50, 1_250, 1_000, true)]         // grown by a quarter
    [InlineData(5_000, 2_048, 1_100_000, 1_000_000, false)] // a large ledger waits for a quarter more entries
    [InlineData(5_000, 2_048, 1_250_000, 1_000_000, true)]
    public void A_snapshot_waits_for_the_interval_and_for_the_ledger_to_grow_by_a_quarter(long raftSinceLast, long interval, long treeSize, long treeSizeAtLast, bool due)
        => Assert.Equal(due, LedgerStateMachine.IsSnapshotDue(raftSinceLast, interval, treeSize, treeSizeAtLast));
}
