using System.Globalization;
using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Health.Ledger.Storage;

namespace Health.Ledger.Replication;

/// <summary>
/// A node's snapshot files, named "{Raft index}-{term}" (as DotNext's <c>SimpleStateMachine</c>
/// named them, so earlier data directories read the same). Each is written to a temporary file,
/// flushed to disk and renamed into place, and the rename is flushed too: DotNext drops the log
/// entries a snapshot covers, so a snapshot must be on disk before it is published.
/// </summary>
internal sealed class SnapshotDirectory(DirectoryInfo location)
{
    /// <summary>Ends the name of every file being written here; such files are removed at start-up.</summary>
    public const string TemporarySuffix = ".tmp";

    // Written by earlier versions, which copied the projection here before handing it to DotNext.
    private const string LegacyPendingCopy = "snapshot-pending.db";

    /// <summary>Writes a snapshot with <paramref name="writeTo"/>, which is given the path to write.</summary>
    public LedgerSnapshot Write(long index, long term, Action<string> writeTo)
    {
        var temporary = NewTemporary();
        try
        {
            writeTo(temporary);
            return Commit(temporary, index, term);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    /// <summary>Writes a snapshot received from the leader.</summary>
    public async Task<LedgerSnapshot> WriteAsync(long index, long term, LogEntry received, CancellationToken token)
    {
        var temporary = NewTemporary();
        try
        {
            var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
            await using (stream.ConfigureAwait(false))
            {
                await received.WriteToAsync(IAsyncBinaryWriter.Create(stream, new byte[1 << 16]), token).ConfigureAwait(false);
                await stream.FlushAsync(token).ConfigureAwait(false);
            }

            return Commit(temporary, index, term);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    /// <summary>Moves a fetched file, already checked and flushed, into place as the snapshot at <paramref name="index"/>.</summary>
    public LedgerSnapshot Adopt(string fetched, long index, long term) => Commit(fetched, index, term);

    /// <summary>The snapshot at <paramref name="index"/> and <paramref name="term"/>, if this node holds it.</summary>
    public LedgerSnapshot? Find(long index, long term) => Snapshots().FirstOrDefault(s => s.Index == index && s.Term == term);

    /// <summary>The snapshot at the highest Raft index, if any.</summary>
    public LedgerSnapshot? Newest() => Snapshots().MaxBy(s => s.Index);

    /// <summary>Deletes the snapshots taken before <paramref name="index"/>.</summary>
    public void RemoveOlderThan(long index)
    {
        foreach (var older in Snapshots().Where(s => s.Index < index))
            older.File.Delete();
    }

    /// <summary>Deletes what a node stopped in the middle of writing a snapshot left behind.</summary>
    public void RemoveUnfinished()
    {
        foreach (var file in location.EnumerateFiles($"*{TemporarySuffix}*"))
            file.Delete();
        File.Delete(Path.Combine(location.FullName, LegacyPendingCopy));
    }

    private IEnumerable<LedgerSnapshot> Snapshots()
    {
        foreach (var file in location.EnumerateFiles("*-*"))
        {
            var parts = file.Name.Split('-');
            if (parts.Length == 2
                && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var term))
                yield return new LedgerSnapshot(file, index, term);
        }
    }

    private string NewTemporary() => Path.Combine(location.FullName, Guid.NewGuid().ToString("N") + TemporarySuffix);

    private LedgerSnapshot Commit(string temporary, long index, long term)
    {
        DiskFlush.File(temporary);
        var destination = Path.Combine(location.FullName, string.Create(CultureInfo.InvariantCulture, $"{index}-{term}"));
        File.Move(temporary, destination, overwrite: true);
        DiskFlush.Directory(location.FullName);
        return new LedgerSnapshot(new FileInfo(destination), index, term);
    }
}
