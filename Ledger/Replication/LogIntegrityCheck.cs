using DotNext.IO.Log;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace Health.Ledger.Replication;

/// <summary>
/// Verifies every entry of a node's write-ahead log against its CRC32 before the node applies any
/// of them, and sets a damaged log aside so that the node rejoins with an empty one and receives
/// the entries (or a snapshot) from the group.
/// </summary>
/// <remarks>
/// The check opens the log with a state machine that applies nothing, because DotNext starts
/// applying committed entries as soon as a log is opened and checks the hashes only afterwards.
/// The node's term and vote (DotNext's <c>state</c> file) are kept, so it never votes twice in a term.
/// </remarks>
internal static class LogIntegrityCheck
{
    // DotNext's log files; "state" (term and vote) stays.
    private static readonly string[] LogParts = ["metadata", "data", "checkpoint"];

    /// <summary>Verifies the log at <paramref name="options"/>' location.</summary>
    /// <returns>Where a damaged log was moved, or null when it is sound.</returns>
    public static async Task<string?> SetAsideIfDamagedAsync(WriteAheadLog.Options options, ISnapshotManager snapshots, CancellationToken token)
    {
        try
        {
            var log = new WriteAheadLog(options, new ApplyNothing(snapshots));
            await using (log.ConfigureAwait(false))
                await log.InitializeAsync(token).ConfigureAwait(false);
            return null;
        }
        catch (IntegrityException)
        {
        }

        var aside = Directory.CreateDirectory($"{options.Location}-damaged-{DateTime.UtcNow:yyyyMMddTHHmmssZ}");
        MoveLog(options.Location, aside.FullName);
        return aside.FullName;
    }

    /// <summary>Moves DotNext's log files from <paramref name="location"/> into <paramref name="destination"/>, leaving the term and vote.</summary>
    internal static void MoveLog(string location, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var part in LogParts)
        {
            var source = Path.Combine(location, part);
            if (Directory.Exists(source))
                Directory.Move(source, Path.Combine(destination, part));
            else if (File.Exists(source))
                File.Move(source, Path.Combine(destination, part));
        }
    }

    // Sees the node's snapshot (so the check starts after it) and applies nothing.
    private sealed class ApplyNothing(ISnapshotManager snapshots) : IStateMachine
    {
        public ISnapshot? Snapshot => snapshots.Snapshot;

        public ValueTask<long> ApplyAsync(LogEntry entry, CancellationToken token) => ValueTask.FromResult(entry.Index);

        public ValueTask ReclaimGarbageAsync(long watermark, CancellationToken token) => ValueTask.CompletedTask;
    }
}
