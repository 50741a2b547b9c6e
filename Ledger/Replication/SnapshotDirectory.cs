using System.Globalization;
using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Health.Ledger.Storage;

namespace Health.Ledger.Replication;

/// <summary>
/// A node's snapshots: copies of the projection named "{Raft index}-{term}" (as DotNext's
/// <c>SimpleStateMachine</c> named them, so earlier data directories read the same), and marks,
/// empty files named "{Raft index}-{term}.mark". Each is written under a temporary name, flushed to
/// disk and renamed into place, and the rename is flushed too: DotNext drops the log entries a
/// snapshot covers, so a snapshot must be on disk before it is published.
/// </summary>
internal sealed class SnapshotDirectory(DirectoryInfo location)
{
    /// <summary>Ends the name of every file being written here; such files are removed at start-up.</summary>
    public const string TemporarySuffix = ".tmp";

    private const string MarkSuffix = ".mark";

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

    /// <summary>Records a mark: the projection, already flushed to disk, holds every entry up to <paramref name="index"/>.</summary>
    public LedgerSnapshot Mark(long index, long term)
    {
        var temporary = NewTemporary();
        File.Create(temporary).Dispose();
        Commit(temporary, string.Create(CultureInfo.InvariantCulture, $"{index}-{term}{MarkSuffix}"));
        return new LedgerSnapshot(null, index, term);
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

    /// <summary>The copy made for the snapshot at <paramref name="index"/> and <paramref name="term"/>, if this node holds one.</summary>
    public LedgerSnapshot? Find(long index, long term) => Snapshots().FirstOrDefault(s => s.Index == index && s.Term == term && s.File is not null);

    /// <summary>The snapshot at the highest Raft index, if any: its copy if it has one, else its mark.</summary>
    public LedgerSnapshot? Newest() => Snapshots().OrderByDescending(s => s.Index).ThenBy(s => s.File is null).FirstOrDefault();

    /// <summary>The copy at the highest Raft index, if any.</summary>
    public LedgerSnapshot? NewestCopy() => Snapshots().Where(s => s.File is not null).MaxBy(s => s.Index);

    /// <summary>Deletes the snapshots (marks and copies) taken before <paramref name="index"/>.</summary>
    public void RemoveOlderThan(long index)
    {
        foreach (var (file, _) in Files().Where(f => f.Snapshot.Index < index))
            file.Delete();
    }

    /// <summary>Deletes every snapshot: the node takes the ledger again from the group.</summary>
    public void RemoveAll() => RemoveOlderThan(long.MaxValue);

    /// <summary>Deletes what a node stopped in the middle of writing a snapshot left behind.</summary>
    public void RemoveUnfinished()
    {
        foreach (var file in location.EnumerateFiles($"*{TemporarySuffix}*"))
            file.Delete();
        File.Delete(Path.Combine(location.FullName, LegacyPendingCopy));
    }

    private IEnumerable<LedgerSnapshot> Snapshots() => Files().Select(f => f.Snapshot);

    private IEnumerable<(FileInfo File, LedgerSnapshot Snapshot)> Files()
    {
        foreach (var file in location.EnumerateFiles("*-*"))
        {
            var isMark = file.Name.EndsWith(MarkSuffix, StringComparison.Ordinal);
            var parts = (isMark ? file.Name[..^MarkSuffix.Length] : file.Name).Split('-');
            if (parts.Length == 2
                && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var term))
                yield return (file, new LedgerSnapshot(isMark ? null : file, index, term));
        }
    }

    private string NewTemporary() => Path.Combine(location.FullName, Guid.NewGuid().ToString("N") + TemporarySuffix);

    private LedgerSnapshot Commit(string temporary, long index, long term)
        => new(new FileInfo(Commit(temporary, string.Create(CultureInfo.InvariantCulture, $"{index}-{term}"))), index, term);

    private string Commit(string temporary, string name)
    {
        DiskFlush.File(temporary);
        var destination = Path.Combine(location.FullName, name);
        File.Move(temporary, destination, overwrite: true);
        DiskFlush.Directory(location.FullName);
        return destination;
    }
}
