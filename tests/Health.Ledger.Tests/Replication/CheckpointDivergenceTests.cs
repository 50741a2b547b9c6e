using Health.Ledger.Entries;
using Health.Ledger.Merkle;
using Health.Ledger.Storage;
using Microsoft.Data.Sqlite;

namespace Health.Ledger.Tests.Replication;

/// <summary>
/// Every node checks each checkpoint entry against its own tree; one that disagrees records where,
/// durably, since its ledger is then not the group's (the node reports itself not ready).
/// </summary>
public sealed class CheckpointDivergenceTests : IDisposable
{
    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-divergence-");

    [Fact]
    public async Task A_checkpoint_the_tree_does_not_match_is_recorded_and_survives_a_restart()
    {
        var databasePath = Path.Combine(root.FullName, "ledger.db");
        using (var store = new LedgerStore(databasePath, []))
        {
            await ApplyAsync(store, [SingleNodeApply.Note("first"), SingleNodeApply.Note("second")]);
            await ApplyAsync(store, [SingleNodeApply.Note("third"), CheckpointOfSize(store, 2, matching: true)]);
            Assert.Null(store.FirstDivergence);

            // Entries 5 to 7: a note, a checkpoint stating another root for size 4, and the right one.
            await ApplyAsync(store, [SingleNodeApply.Note("fourth"), CheckpointOfSize(store, 4, matching: false), CheckpointOfSize(store, 4, matching: true)]);
            Assert.Equal(6, store.FirstDivergence);
        }

        using var reopened = new LedgerStore(databasePath, []);
        Assert.Equal(6, reopened.FirstDivergence);
    }

    private Task ApplyAsync(LedgerStore store, LedgerCommand[] commands) => SingleNodeApply.ApplyAsync(root, store, new MerkleTree(store.ReadLeafHashes), commands);

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
