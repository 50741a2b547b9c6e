using DotNext.Net.Cluster.Consensus.Raft;
using Health.Ledger.Merkle;
using Health.Ledger.Replication;
using Health.Ledger.Storage;
using Microsoft.Data.Sqlite;

namespace Health.Ledger.Tests.Replication;

/// <summary>
/// A node proposes its next batch once the last one is committed, not once it is applied: the
/// state machine tells the batch's owner of the commit as it starts applying the batch.
/// </summary>
public sealed class BatchCommitCallbackTests : IDisposable
{
    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-commit-callback-");

    [Fact]
    public async Task The_callback_runs_on_commit_before_the_batch_is_applied_and_not_for_a_forgotten_batch()
    {
        using var store = new LedgerStore(Path.Combine(root.FullName, "ledger.db"), []);
        var machine = SingleNodeApply.StateMachine(root, store, new MerkleTree(store.ReadLeafHashes));
        await using (machine)
        {
            var log = await SingleNodeApply.OpenLogAsync(root, machine);
            await using (log)
            {
                var kept = new CommandBatch(Guid.NewGuid(), 1_700_000_000_000, [SingleNodeApply.Note("kept")]);
                var appliedWhenCalled = new List<bool>();
                Task<(long First, int Count)>? applied = null;
                applied = machine.WaitForBatch(kept.Id, () => appliedWhenCalled.Add(applied!.IsCompleted));

                var forgotten = new CommandBatch(Guid.NewGuid(), 1_700_000_000_000, [SingleNodeApply.Note("forgotten")]);
                var forgottenCalls = 0;
                _ = machine.WaitForBatch(forgotten.Id, () => forgottenCalls++);
                machine.ForgetBatch(forgotten.Id);

                await log.AppendAsync(new BinaryLogEntry { Term = 1, Content = kept.Encode() });
                var second = await log.AppendAsync(new BinaryLogEntry { Term = 1, Content = forgotten.Encode() });
                Assert.Empty(appliedWhenCalled);

                await log.CommitAsync(second);
                await log.WaitForApplyAsync(second);

                Assert.Equal([false], appliedWhenCalled);
                Assert.Equal((1L, 1), await applied);
                Assert.Equal(0, forgottenCalls);
                Assert.Equal(second, store.RaftIndex);
            }
        }
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        root.Delete(recursive: true);
    }
}
