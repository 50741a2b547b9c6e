using Dapper;
using Health.Ledger.Entries;
using Microsoft.Data.Sqlite;

namespace Health.Ledger.Storage;

/// <summary>
/// The SQLite projection of the applied ledger: every entry's canonical bytes and leaf hash, the
/// applied batch ids (for idempotent re-proposals), checkpoints, and the modules' own tables.
/// It is derived from the Raft log only, so it is identical on every node and can be rebuilt.
/// </summary>
public sealed partial class LedgerStore : IDisposable
{
    private readonly string path;
    private readonly IReadOnlyList<ILedgerProjection> projections;
    private readonly ProjectionReaders readers;
    private SqliteConnection writer;

    // Run for every applied batch or entry: compiled once per writer connection.
    private readonly ReusedStatement findBatch = new("SELECT first_idx, count FROM batches WHERE id = @id", "@id");
    private readonly ReusedStatement insertEntry = new(
        "INSERT INTO entries(idx, kind, ts, leaf, body) VALUES (@idx, @kind, @ts, @leaf, @body)", "@idx", "@kind", "@ts", "@leaf", "@body");
    private readonly ReusedStatement insertBatch = new("INSERT INTO batches(id, first_idx, count) VALUES (@id, @first, @count)", "@id", "@first", "@count");
    private readonly ReusedStatement updateState = new("UPDATE state SET raft_index = @raftIndex, last_ts = @lastTimestamp WHERE id = 1", "@raftIndex", "@lastTimestamp");

    private const int SqliteCorrupt = 11, SqliteNotADatabase = 26;

    /// <summary>
    /// Opens (creating if needed) the projection at <paramref name="path"/>. A file that fails
    /// SQLite's structural check is set aside (<see cref="SetAsideAs"/>) and an empty projection
    /// started, to be rebuilt from snapshots and the log.
    /// </summary>
    public LedgerStore(string path, IReadOnlyList<ILedgerProjection> projections)
    {
        this.path = Path.GetFullPath(path);
        this.projections = projections;
        readers = new ProjectionReaders(ConnectionString);
        writer = OpenChecked();
    }

    /// <summary>Where a damaged projection found at start-up was moved, or null.</summary>
    public string? SetAsideAs { get; private set; }

    private SqliteConnection OpenChecked()
    {
        try
        {
            var connection = Open();
            if (connection.QuerySingle<string>("PRAGMA quick_check") == "ok")
                return connection;
            connection.Dispose();
        }
        catch (SqliteException e) when (e.SqliteErrorCode is SqliteCorrupt or SqliteNotADatabase)
        {
        }

        SqliteConnection.ClearAllPools();
        SetAsideAs = $"{path}.damaged-{DateTime.UtcNow:yyyyMMddTHHmmssZ}";
        File.Move(path, SetAsideAs);
        foreach (var suffix in new[] { "-wal", "-shm" })
            File.Delete(path + suffix);
        return Open();
    }

    /// <summary>Raft index of the last log entry reflected here.</summary>
    public long RaftIndex { get; private set; }

    /// <summary>Changes whenever a membership entry is applied or the projection is replaced.</summary>
    public long MembershipVersion => Volatile.Read(ref membershipVersion);

    private long membershipVersion;

    /// <summary>
    /// The ledger index of the first checkpoint entry whose root this node's tree did not match, or
    /// null: once set, this node's ledger is not the group's and must be rebuilt.
    /// </summary>
    public long? FirstDivergence { get; private set; }

    /// <summary>Timestamp of the last applied entry.</summary>
    public long LastTimestamp { get; private set; }

    private string ConnectionString => new SqliteConnectionStringBuilder { DataSource = path, Pooling = true }.ToString();

    private SqliteConnection Open()
    {
        var connection = new SqliteConnection(ConnectionString);
        connection.Open();
        connection.Execute("""
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = NORMAL;
            CREATE TABLE IF NOT EXISTS entries(idx INTEGER PRIMARY KEY, kind TEXT NOT NULL, ts INTEGER NOT NULL, leaf BLOB NOT NULL, body BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS batches(id BLOB PRIMARY KEY, first_idx INTEGER NOT NULL, count INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS checkpoints(tree_size INTEGER PRIMARY KEY, idx INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS signer_keys(key_id TEXT PRIMARY KEY, node_id TEXT NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS members(node_id TEXT PRIMARY KEY, raft TEXT NOT NULL, http TEXT NOT NULL, removed INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS state(id INTEGER PRIMARY KEY CHECK (id = 1), raft_index INTEGER NOT NULL, last_ts INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS divergences(idx INTEGER PRIMARY KEY);
            INSERT OR IGNORE INTO state(id, raft_index, last_ts) VALUES (1, 0, 0);
            """);
        foreach (var projection in projections)
            projection.CreateSchema(connection);
        (RaftIndex, LastTimestamp) = connection.QuerySingle<(long, long)>("SELECT raft_index, last_ts FROM state WHERE id = 1");
        FirstDivergence = connection.QuerySingle<long?>("SELECT min(idx) FROM divergences");
        return connection;
    }

    /// <summary>Opens a read-only view for queries on any thread.</summary>
    public SqliteConnection OpenReader() => readers.Open();

    /// <summary>
    /// Runs a query made on every request (a lookup by key) on a connection kept open with its
    /// statements compiled; safe on any thread. The query must not keep the connection or a reader
    /// past its return.
    /// </summary>
    public T Query<T>(Func<KeptConnection, T> query) => readers.Query(query);

    /// <summary>Every leaf hash in index order, to rebuild the Merkle tree at start-up.</summary>
    public IEnumerable<byte[]> ReadLeafHashes()
    {
        using var connection = OpenReader();
        foreach (var leaf in connection.Query<byte[]>("SELECT leaf FROM entries ORDER BY idx", buffered: false))
            yield return leaf;
    }

    /// <summary>The leaf hashes at 0-based tree positions [start, start + count), in order. Safe on any thread.</summary>
    public IReadOnlyList<byte[]> ReadLeafHashes(long start, int count)
    {
        using var connection = OpenReader();
        return connection.Query<byte[]>("SELECT leaf FROM entries WHERE idx > @start AND idx <= @end ORDER BY idx", new { start, end = start + count }).AsList();
    }

    /// <summary>
    /// The first index and count of an applied batch, or null; on the apply thread, through the writer
    /// connection (which is never shared with other threads).
    /// </summary>
    internal (long First, int Count)? FindBatchWhileApplying(Guid id)
    {
        using var row = findBatch.Bind(writer, null, id.ToByteArray()).ExecuteReader();
        return row.Read() ? (row.GetInt64(0), row.GetInt32(1)) : null;
    }

    /// <summary>
    /// Writes one applied batch atomically: its entries, their module projections, the batch id and
    /// the Raft index reached.
    /// </summary>
    /// <param name="raftIndex">The Raft index of the batch.</param>
    /// <param name="batchId">The batch id, for exactly-once application.</param>
    /// <param name="entries">The entries with their canonical bytes and leaf hashes.</param>
    /// <param name="divergences">Ledger indices of checkpoint entries whose root this node's tree did not match.</param>
    internal void ApplyBatch(long raftIndex, Guid batchId, IReadOnlyList<(LedgerEntry Entry, byte[] Body, byte[] Leaf)> entries, IReadOnlyCollection<long> divergences)
    {
        using var transaction = writer.BeginTransaction();
        foreach (var (entry, body, leaf) in entries)
        {
            insertEntry.Execute(writer, entry.Index, entry.Kind, entry.Timestamp, leaf, body);
            if (entry.Kind == LedgerEntryKinds.MemberAdded.Name)
            {
                writer.Execute(
                    "INSERT OR REPLACE INTO members(node_id, raft, http, removed) VALUES (@nodeId, @raft, @http, 0)",
                    new { nodeId = entry.Fields["nodeId"], raft = entry.Fields["raftEndPoint"], http = entry.Fields["httpUrl"] }, transaction);
            }
            else if (entry.Kind == LedgerEntryKinds.MemberRemoved.Name)
            {
                writer.Execute(
                    "INSERT INTO members(node_id, raft, http, removed) VALUES (@nodeId, '', '', 1) ON CONFLICT(node_id) DO UPDATE SET removed = 1",
                    new { nodeId = entry.Fields["nodeId"] }, transaction);
            }
            else if (entry.Kind == LedgerEntryKinds.SignerCertificate.Name)
            {
                writer.Execute("INSERT OR IGNORE INTO signer_keys(key_id, node_id, idx) VALUES (@keyId, @nodeId, @Index)",
                    new { keyId = entry.Fields["keyId"], nodeId = entry.Fields["nodeId"], entry.Index }, transaction);
            }
            else if (entry.Kind == LedgerEntryKinds.Checkpoint.Name)
            {
                writer.Execute(
                    "INSERT OR IGNORE INTO checkpoints(tree_size, idx) VALUES (@size, @Index)",
                    new { size = long.Parse(entry.Fields["treeSize"], System.Globalization.CultureInfo.InvariantCulture), entry.Index }, transaction);
            }

            foreach (var projection in projections)
                projection.Apply(entry, writer, transaction);
        }

        if (entries.Count > 0)
        {
            insertBatch.Execute(writer, batchId.ToByteArray(), entries[0].Entry.Index, entries.Count);
        }

        var lastTimestamp = entries.Count > 0 ? entries[^1].Entry.Timestamp : LastTimestamp;
        updateState.Execute(writer, raftIndex, lastTimestamp);
        foreach (var diverged in divergences)
            writer.Execute("INSERT OR IGNORE INTO divergences(idx) VALUES (@diverged)", new { diverged }, transaction);
        transaction.Commit();
        if (divergences.Count > 0)
            FirstDivergence ??= divergences.Min();
        if (entries.Any(static e => e.Entry.Kind == LedgerEntryKinds.MemberAdded.Name || e.Entry.Kind == LedgerEntryKinds.MemberRemoved.Name))
            Interlocked.Increment(ref membershipVersion);
        RaftIndex = raftIndex;
        LastTimestamp = lastTimestamp;
    }

    /// <summary>Records that a Raft entry carrying nothing new (a duplicate batch) was applied.</summary>
    internal void AdvanceRaftIndex(long raftIndex)
    {
        // The timestamp is unchanged: the state row is written by the one statement that writes it after a batch.
        updateState.Execute(writer, raftIndex, LastTimestamp);
        RaftIndex = raftIndex;
    }

    /// <summary>
    /// Flushes every transaction committed so far to disk, from any thread: after it, the projection
    /// holds them through a power loss, and the Raft log may drop their entries.
    /// </summary>
    /// <remarks>
    /// With <c>synchronous = NORMAL</c> SQLite flushes its write-ahead log only before a checkpoint,
    /// and the database file after a checkpoint that completed. So every committed transaction is
    /// in the database file, flushed, or in the write-ahead log: flushing the log file makes all of
    /// them durable. SQLite overwrites the log from its start only after a completed checkpoint,
    /// which flushed the database file first, so a transaction leaving the log meanwhile is on
    /// disk either way. SQLite takes no POSIX locks on the log file (its locks are in the -shm
    /// file), so opening and closing it here releases none.
    /// </remarks>
    internal void FlushCommitted() => DiskFlush.FileInUse(path + "-wal");

    /// <summary>
    /// Opens a read transaction on the projection as it is now, to copy it from later while the
    /// writer goes on applying (the projection is in WAL mode, so the reader keeps this state).
    /// </summary>
    /// <remarks>
    /// The write-ahead log is first checkpointed into the database file as far as readers allow.
    /// When all of it went in, the file alone is the projection at this moment, and it stays so
    /// while the read transaction lasts: SQLite checkpoints no frame that a reader's snapshot does
    /// not hold. The copy is then a plain file copy; otherwise it goes page by page through SQLite.
    /// </remarks>
    internal ProjectionCopy BeginCopy()
    {
        var (_, frames, checkpointed) = writer.QuerySingle<(int Busy, int Frames, int Checkpointed)>("PRAGMA wal_checkpoint(PASSIVE)");
        return new(path, fileIsWhole: frames == checkpointed);
    }

    /// <summary>A read transaction on the projection at one Raft index, from which a copy is written.</summary>
    internal sealed class ProjectionCopy : IDisposable
    {
        private readonly string path;
        private readonly bool fileIsWhole;
        private readonly SqliteConnection connection;
        private readonly SqliteTransaction transaction;

        internal ProjectionCopy(string path, bool fileIsWhole)
        {
            this.path = path;
            this.fileIsWhole = fileIsWhole;
            connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
            connection.Open();
            transaction = connection.BeginTransaction(deferred: true);

            // A deferred transaction takes its snapshot at its first read: this one.
            connection.QuerySingle<long>("SELECT raft_index FROM state WHERE id = 1", transaction: transaction);
        }

        /// <summary>Writes the projection as it was when this copy began to <paramref name="destination"/>.</summary>
        public void WriteTo(string destination)
        {
            File.Delete(destination);
            if (fileIsWhole)
            {
                // The kernel copies the file; no page passes through this process.
                File.Copy(path, destination);
            }

            using var copy = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = destination, Pooling = false }.ToString());
            copy.Open();
            if (!fileIsWhole)
            {
                // SQLite's online backup copies pages as they are, where VACUUM INTO rebuilt every
                // table and index. It reads through this connection's open transaction, so it sees
                // exactly that state. A file being written under a temporary name needs neither a
                // rollback journal nor SQLite's own flushes: an interrupted copy is deleted, and a
                // finished one is flushed once, whole, before it is named (SnapshotDirectory).
                copy.Execute("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF");
                connection.BackupDatabase(copy);
            }

            // One self-contained file: whoever opens it, read-only included, needs no -wal or -shm beside it.
            copy.Execute("PRAGMA journal_mode = DELETE");
        }

        /// <inheritdoc/>
        public void Dispose()
        {
            transaction.Dispose();
            connection.Dispose();
        }
    }

    /// <summary>Reads the Raft index a projection file reflects, without opening it as the live store.</summary>
    internal static long ReadRaftIndex(string file)
    {
        using var connection = OpenCopy(file);
        return connection.QuerySingle<long>("SELECT raft_index FROM state WHERE id = 1");
    }

    /// <summary>The leaf hashes, in order, of a copy of the projection (a snapshot file) that no store has open.</summary>
    internal static IEnumerable<byte[]> ReadLeafHashes(string file)
    {
        using var connection = OpenCopy(file);
        foreach (var leaf in connection.Query<byte[]>("SELECT leaf FROM entries ORDER BY idx", buffered: false))
            yield return leaf;
    }

    private static SqliteConnection OpenCopy(string file)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    /// <summary>Empties the projection, to be rebuilt from the Raft log and snapshots.</summary>
    internal void ResetToEmpty()
    {
        using var excluded = ExcludeReaders();
        Replace(() => File.Delete(path));
    }

    /// <summary>
    /// Holds readers off the projection (new ones wait) once those open have closed, waiting up to
    /// <paramref name="wait"/> for them; null if they did not close in time.
    /// </summary>
    internal ProjectionReaders.Excluded? TryExcludeReaders(TimeSpan wait) => readers.TryExclude(wait);

    private ProjectionReaders.Excluded ExcludeReaders() => readers.TryExclude(Timeout.InfiniteTimeSpan)!;

    /// <summary>Replaces the whole projection with a copy made through <see cref="BeginCopy"/> (snapshot installation).</summary>
    internal void ReplaceWith(string source)
    {
        using var excluded = ExcludeReaders();
        Replace(() => File.Copy(source, path, overwrite: true));
    }

    /// <summary>Replaces the whole projection with a copy of one, moving the file into place, while readers are held off.</summary>
    /// <param name="copy">The copy; it is gone afterwards.</param>
    /// <param name="excluded">From <see cref="TryExcludeReaders"/>: no reader has the projection open.</param>
    internal void ReplaceWithMoved(string copy, ProjectionReaders.Excluded excluded)
    {
        ArgumentNullException.ThrowIfNull(excluded);
        Replace(() => File.Move(copy, path, overwrite: true));
    }

    private void Replace(Action putInPlace)
    {
        writer.Dispose();
        SqliteConnection.ClearAllPools();
        foreach (var suffix in new[] { "-wal", "-shm" })
            File.Delete(path + suffix);
        putInPlace();
        writer = Open();
        Interlocked.Increment(ref membershipVersion);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var statement in new[] { findBatch, insertEntry, insertBatch, updateState })
            statement.Dispose();
        readers.Dispose();
        writer.Dispose();
        SqliteConnection.ClearPool(writer);
    }
}
