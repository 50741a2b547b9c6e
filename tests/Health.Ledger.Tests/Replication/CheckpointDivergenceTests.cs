using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Health.Ledger.Entries;
using Health.Ledger.Merkle;
using Health.Ledger.Replication;
using Health.Ledger.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Health.Ledger.Tests.Replication;

/// <summary>
/// Every node checks each checkpoint entry against its own tree; one that disagrees records where,
/// durably, since its ledger is then not the group's (the node reports itself not ready).
/// </summary>
public sealed class CheckpointDivergenceTests : IDisposable
{
    // Only followers fetch snapshots; these tests apply entries on one node, which never does.
    private static readonly LedgerMember Self = LedgerMember.Parse("node1=127.0.0.1:1=http://127.0.0.1:2/");

    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-divergence-");

    [Fact]
    public async Task A_checkpoint_the_tree_does_not_match_is_recorded_and_survives_a_restart()
    {
        var databasePath = Path.Combine(root.FullName, "ledger.db");
        using (var store = new LedgerStore(databasePath, []))
        {
            await ApplyAsync(store, [Note("first"), Note("second")]);
            await ApplyAsync(store, [Note("third"), CheckpointOfSize(store, 2, matching: true)]);
            Assert.Null(store.FirstDivergence);

            // Entries 5 to 7: a note, a checkpoint stating another root for size 4, and the right one.
            await ApplyAsync(store, [Note("fourth"), CheckpointOfSize(store, 4, matching: false), CheckpointOfSize(store, 4, matching: true)]);
            Assert.Equal(6, store.FirstDivergence);
        }

        using var reopened = new LedgerStore(databasePath, []);
        Assert.Equal(6, reopened.FirstDivergence);
    }

    // Applies one batch through a write-ahead log and the state machine, as a node does.
    private async Task ApplyAsync(LedgerStore store, LedgerCommand[] commands)
    {
        var tree = new MerkleTree(store.ReadLeafHashes);
        var snapshots = root.CreateSubdirectory("snapshots");
        var machine = new LedgerStateMachine(snapshots, store, tree, snapshotInterval: 1_000, new SnapshotTransfer(Self, new HttpClientHandler(), snapshots, TimeSpan.FromSeconds(1), NullLogger.Instance), NullLogger.Instance);
        await using (machine)
        {
            await machine.RestoreAsync(CancellationToken.None);
            var log = new WriteAheadLog(new WriteAheadLog.Options { Location = Path.Combine(root.FullName, "raft") }, machine);
            await using (log)
            {
                var index = await log.AppendAsync(new BinaryLogEntry { Term = 1, Content = new CommandBatch(Guid.NewGuid(), 1_700_000_000_000, commands).Encode() });
                await log.CommitAsync(index);
                await log.WaitForApplyAsync(index);
            }
        }
    }

    private static LedgerCommand Note(string text) => new("OperatorNote", new Dictionary<string, string> { ["note"] = text });

    // A checkpoint entry as a leader writes it, stating the root of the first `size` entries as the
    // store holds them (or another root); the signature is not what is checked here.
    private static LedgerCommand CheckpointOfSize(LedgerStore store, long size, bool matching)
    {
        var leaves = new MerkleTree(store.ReadLeafHashes);
        foreach (var leaf in store.ReadLeafHashes())
            leaves.AppendLeafHash(leaf);
        var stated = matching ? leaves.Root(size) : new byte[MerkleHash.Size];
        return new LedgerCommand(LedgerEntryKinds.Checkpoint.Name, new Dictionary<string, string>
        {
            ["treeSize"] = size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["root"] = Convert.ToHexString(stated),
            ["signer"] = "node1",
            ["keyId"] = "test",
            ["signature"] = Convert.ToBase64String(new byte[64]),
        });
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        root.Delete(recursive: true);
    }
}
