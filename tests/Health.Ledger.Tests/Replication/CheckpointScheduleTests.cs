using Health.Ledger.Replication;

namespace Health.Ledger.Tests.Replication;

public sealed class CheckpointScheduleTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    [Theory]
    [InlineData(0, 0, 0, false)]      // an empty ledger
    [InlineData(1, 0, 0, true)]       // one entry, no checkpoint yet
    [InlineData(2, 1, 2, false)]      // only the checkpoint's own entry is uncovered
    [InlineData(3, 1, 3, true)]       // an append landed between signing (size 1) and the checkpoint's entry (3)
    [InlineData(4, 3, 4, false)]      // the next checkpoint covered it
    [InlineData(5, 3, 4, true)]       // a new entry after the checkpoint
    public void A_checkpoint_is_due_for_every_entry_it_does_not_cover(long treeSize, long coveredSize, long checkpointIndex, bool due)
        => Assert.Equal(due, LedgerNode.IsCheckpointDue(treeSize, coveredSize, checkpointIndex, Interval, 1000, Interval));

    [Fact]
    public void Within_the_interval_only_a_full_batch_of_entries_makes_one_due()
    {
        Assert.False(LedgerNode.IsCheckpointDue(500, 1, 2, TimeSpan.Zero, 1000, Interval));
        Assert.True(LedgerNode.IsCheckpointDue(1001, 1, 2, TimeSpan.Zero, 1000, Interval));
    }
}
