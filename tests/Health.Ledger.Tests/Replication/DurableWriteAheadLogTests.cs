using System.Buffers.Binary;
using DotNext.IO.Log;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Health.Ledger.Replication;

namespace Health.Ledger.Tests.Replication;

/// <summary>
/// The follower path of the Raft log: what a node killed right after acknowledging entries would
/// restart with is DotNext's checkpoint file, which must name exactly the acknowledged tail.
/// </summary>
public sealed class DurableWriteAheadLogTests : IDisposable
{
    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("health-wal-");

    [Fact]
    public async Task Appended_entries_are_flushed_before_the_follower_acknowledges_them()
    {
        await using var log = Open();
        IAuditTrail<IRaftLogEntry> follower = log;

        await follower.AppendAsync(Entries(term: 1, count: 4_000), startIndex: 1, skipCommitted: true, CancellationToken.None);

        Assert.Equal(4_000, CheckpointLastIndex());
        Assert.True(log.IsFlushedThrough(4_000));
    }

    [Fact]
    public async Task Entries_replaced_by_a_new_leader_are_acknowledged_only_once_the_checkpoint_names_the_shorter_tail()
    {
        await using var log = Open();
        IAuditTrail<IRaftLogEntry> follower = log;
        await follower.AppendAsync(Entries(term: 1, count: 4_000), startIndex: 1, skipCommitted: true, CancellationToken.None);

        // A leader of term 2 replaces entries 5 to 4,000 with 3,000 of its own: megabytes to write
        // out, so a follower that answered before its flusher did would be caught here.
        await follower.AppendAsync(Entries(term: 2, count: 3_000), startIndex: 5, skipCommitted: true, CancellationToken.None);

        // Were the checkpoint still to say 4,000, a node killed now would restart with term-1
        // entries after the acknowledged term-2 ones, and vote as if its last term were 1.
        Assert.Equal(3_004, log.LastEntryIndex);
        Assert.Equal(3_004, CheckpointLastIndex());
        Assert.True(log.IsFlushedThrough(3_004));
    }

    [Fact]
    public async Task The_term_of_the_newest_entry_is_read_from_the_log()
    {
        await using var log = Open();
        IAuditTrail<IRaftLogEntry> follower = log;
        Assert.Equal(0, await log.LastEntryTermAsync(CancellationToken.None));

        await follower.AppendAsync(Entries(term: 3, count: 2), startIndex: 1, skipCommitted: true, CancellationToken.None);
        Assert.Equal(3, await log.LastEntryTermAsync(CancellationToken.None));

        await follower.AppendAsync(Entries(term: 4, count: 1), startIndex: 3, skipCommitted: true, CancellationToken.None);
        Assert.Equal(4, await log.LastEntryTermAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_leader_reads_entry_contents_for_a_follower_in_bounded_pieces_and_metadata_whole()
    {
        await using var log = Open();
        IAuditTrail<IRaftLogEntry> raft = log;
        await raft.AppendAsync(Entries(term: 1, count: 3_000), startIndex: 1, skipCommitted: true, CancellationToken.None);

        // As DotNext's replication reads them (through the interface): 3,000 entries of 4 KiB are 12 MiB.
        var first = await raft.ReadAsync(new EntriesRead(metadataOnly: false), 1, 3_000, CancellationToken.None);
        Assert.Equal(DurableWriteAheadLog.MaxBytesPerRead / 4_096, first.Count);
        Assert.Equal(4_096, first.Bytes / first.Count);
        var rest = await raft.ReadAsync(new EntriesRead(metadataOnly: false), 1 + first.Count, 3_000, CancellationToken.None);
        Assert.Equal(first.Count, rest.Count);

        Assert.Equal(3_000, (await raft.ReadAsync(new EntriesRead(metadataOnly: true), 1, 3_000, CancellationToken.None)).Count);
    }

    private DurableWriteAheadLog Open() => new(new WriteAheadLog.Options { Location = root.FullName, ChunkSize = 1 << 20 }, new AppliesNothing());

    // Entries of 4 KiB, filled with their term.
    private static LogEntryProducer<BinaryLogEntry> Entries(long term, int count)
    {
        var content = Enumerable.Repeat((byte)term, 4_096).ToArray();
        return new(Enumerable.Range(0, count).Select(_ => new BinaryLogEntry { Term = term, Content = content }).ToList());
    }

    // DotNext's checkpoint file, version 1: format version (uint32), commit index, last index (int64, little-endian).
    private long CheckpointLastIndex()
    {
        using var file = File.OpenHandle(Path.Combine(root.FullName, "checkpoint"), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        Span<byte> buffer = stackalloc byte[20];
        Assert.Equal(buffer.Length, RandomAccess.Read(file, buffer, 0));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(buffer));
        return BinaryPrimitives.ReadInt64LittleEndian(buffer[12..]);
    }

    public void Dispose() => root.Delete(recursive: true);

    // Counts the entries a read hands over and the bytes of their contents.
    private sealed class EntriesRead(bool metadataOnly) : ILogEntryConsumer<IRaftLogEntry, (int Count, long Bytes)>
    {
        public bool LogEntryMetadataOnly => metadataOnly;

        public ValueTask<(int Count, long Bytes)> ReadAsync<TEntry, TList>(TList entries, long? snapshotIndex, CancellationToken token)
            where TEntry : IRaftLogEntry
            where TList : IReadOnlyList<TEntry>
            => ValueTask.FromResult((entries.Count, entries.Sum(e => e.Length ?? 0)));
    }

    private sealed class AppliesNothing : IStateMachine
    {
        public ISnapshot? Snapshot => null;

        public ValueTask<long> ApplyAsync(LogEntry entry, CancellationToken token) => ValueTask.FromResult(entry.Index);

        public ValueTask ReclaimGarbageAsync(long watermark, CancellationToken token) => ValueTask.CompletedTask;
    }
}
