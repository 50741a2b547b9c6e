using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Health.Ledger.Entries;
using Health.Ledger.Merkle;
using Health.Ledger.Replication;
using Health.Ledger.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Health.Ledger.Tests.Replication;

/// <summary>Applies batches to a projection through a write-ahead log and the state machine, as one node does.</summary>
internal static class SingleNodeApply
{
    // Only followers fetch snapshots; a node applying alone never does.
    private static readonly LedgerMember Self = LedgerMember.Parse("node1=127.0.0.1:1=http://127.0.0.1:2/");

    /// <summary>A snapshot transfer for a state machine that never fetches.</summary>
    public static SnapshotTransfer Transfer(DirectoryInfo snapshots) => new(Self, new HttpClientHandler(), snapshots, TimeSpan.FromSeconds(1), NullLogger.Instance);

    /// <summary>An operator note carrying <paramref name="text"/>, the simplest command a batch can hold.</summary>
    public static LedgerCommand Note(string text) => new("OperatorNote", new Dictionary<string, string> { ["note"] = text });

    /// <summary>A state machine over <paramref name="store"/> and <paramref name="tree"/>, its snapshots under <paramref name="root"/>.</summary>
    public static LedgerStateMachine StateMachine(DirectoryInfo root, LedgerStore store, MerkleTree tree, long snapshotInterval = 1_000_000, ILogger? logger = null)
    {
        var snapshots = root.CreateSubdirectory("snapshots");
        return new LedgerStateMachine(snapshots, store, tree, snapshotInterval, Transfer(snapshots), logger ?? NullLogger.Instance);
    }

    /// <summary>Restores <paramref name="machine"/> and opens its write-ahead log under <paramref name="root"/>, as a node does at start.</summary>
    public static async Task<WriteAheadLog> OpenLogAsync(DirectoryInfo root, LedgerStateMachine machine)
    {
        await machine.RestoreAsync(CancellationToken.None);
        return new WriteAheadLog(new WriteAheadLog.Options { Location = Path.Combine(root.FullName, "raft") }, machine);
    }

    /// <summary>Applies <paramref name="commands"/> as one batch, with the log and snapshots under <paramref name="root"/>.</summary>
    public static async Task ApplyAsync(DirectoryInfo root, LedgerStore store, MerkleTree tree, LedgerCommand[] commands)
    {
        var machine = StateMachine(root, store, tree);
        await using (machine)
        {
            var log = await OpenLogAsync(root, machine);
            await using (log)
            {
                var index = await log.AppendAsync(new BinaryLogEntry { Term = 1, Content = new CommandBatch(Guid.NewGuid(), 1_700_000_000_000, commands).Encode() });
                await log.CommitAsync(index);
                await log.WaitForApplyAsync(index);
            }
        }
    }
}
