using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Health.Ledger.Checkpoints;
using Health.Ledger.Entries;
using Health.Ledger.Merkle;
using Health.Ledger.Security;

namespace Health.FhirGateway.Audit;

/// <summary>
/// Checks an audit export without any node: signer certificates against the consortium CA,
/// checkpoint signatures, every entry's place in the hash chain and the Merkle tree, each
/// checkpoint's root, the consistency proofs between checkpoints, no gaps in the entries, and
/// every AuditEvent byte for byte against the event its ledger entry yields (outcomes recomputed by
/// replaying the consents) with its inclusion proof. Reads each file once, in one pass.
/// </summary>
public static class AuditVerifier
{
    /// <summary>Verifies the export in <paramref name="folder"/>.</summary>
    public static AuditReport Verify(string folder, X509Certificate2 authority)
    {
        var report = new AuditReport();
        AuditManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<AuditManifest>(File.ReadAllText(Path.Combine(folder, AuditExportFiles.Manifest)), AuditManifest.Json)
                ?? throw new JsonException("empty");
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            report.Fail($"{AuditExportFiles.Manifest}: cannot be read ({e.Message})");
            return report;
        }

        if (manifest.Format != AuditExportFiles.Format)
            report.Fail($"{AuditExportFiles.Manifest}: format {manifest.Format} is not {AuditExportFiles.Format}");
        var keys = ReadSigners(folder, authority, report);
        var checkpoints = ReadCheckpoints(folder, keys, report);
        if (checkpoints.Count == 0 || checkpoints[^1].TreeSize != manifest.TreeSize)
            report.Fail($"{AuditExportFiles.Checkpoints}: no signed checkpoint of tree size {manifest.TreeSize}, the size the export claims to cover");
        var coveringRoot = checkpoints.LastOrDefault(c => c.TreeSize == manifest.TreeSize)?.Root;
        var tree = CheckEntriesAndEvents(folder, manifest, coveringRoot, report);
        foreach (var checkpoint in checkpoints)
        {
            if (checkpoint.TreeSize > tree.Size || !tree.Root(checkpoint.TreeSize).AsSpan().SequenceEqual(checkpoint.Root))
                report.Fail($"{AuditExportFiles.Checkpoints}: the checkpoint of tree size {checkpoint.TreeSize} does not match the root of the exported entries");
        }

        CheckConsistency(folder, checkpoints, report);
        return report;
    }

    private static Dictionary<string, ECDsa> ReadSigners(string folder, X509Certificate2 authority, AuditReport report)
    {
        var keys = new Dictionary<string, ECDsa>(StringComparer.Ordinal);
        foreach (var (line, json) in Lines(folder, AuditExportFiles.Signers, report))
        {
            try
            {
                var certificate = X509Certificate2.CreateFromPem(json.GetProperty("certificate").GetString());
                var nodeId = json.GetProperty("nodeId").GetString();
                // Checked as of shortly after issue: an export outlives the certificates that signed it.
                if (!ConsortiumIdentity.ChainsTo(certificate, authority, certificate.NotBefore.AddMinutes(10)))
                    report.Fail($"{AuditExportFiles.Signers} line {line}: the certificate of {nodeId} is not issued by the consortium CA");
                else if (ConsortiumIdentity.NodeIdOf(certificate) != nodeId)
                    report.Fail($"{AuditExportFiles.Signers} line {line}: the certificate does not name node {nodeId}");
                else if (certificate.GetECDsaPublicKey() is { } key)
                    keys[NodeSigningKey.ComputeKeyId(key)] = key;
            }
            catch (Exception e) when (e is CryptographicException or KeyNotFoundException or InvalidOperationException or ArgumentException)
            {
                report.Fail($"{AuditExportFiles.Signers} line {line}: not a signer certificate ({e.GetType().Name})");
            }
        }

        return keys;
    }

    private static List<SignedCheckpoint> ReadCheckpoints(string folder, Dictionary<string, ECDsa> keys, AuditReport report)
    {
        var checkpoints = new List<SignedCheckpoint>();
        foreach (var (line, json) in Lines(folder, AuditExportFiles.Checkpoints, report))
        {
            try
            {
                var checkpoint = new SignedCheckpoint(json.GetProperty("treeSize").GetInt64(), Convert.FromHexString(json.GetProperty("root").GetString()!),
                    json.GetProperty("signer").GetString()!, json.GetProperty("keyId").GetString()!, Convert.FromBase64String(json.GetProperty("signature").GetString()!));
                if (!keys.TryGetValue(checkpoint.KeyId, out var key))
                    report.Fail($"{AuditExportFiles.Checkpoints} line {line}: tree size {checkpoint.TreeSize} is signed by key {checkpoint.KeyId[..16]}…, which no certified signer holds");
                else if (!checkpoint.Verify(key))
                    report.Fail($"{AuditExportFiles.Checkpoints} line {line}: the signature over tree size {checkpoint.TreeSize} is not valid");
                else if (checkpoints.Count > 0 && checkpoint.TreeSize <= checkpoints[^1].TreeSize)
                    report.Fail($"{AuditExportFiles.Checkpoints} line {line}: tree size {checkpoint.TreeSize} does not follow {checkpoints[^1].TreeSize}");
                else
                {
                    checkpoints.Add(checkpoint);
                    report.Checkpoints++;
                }
            }
            catch (Exception e) when (e is FormatException or KeyNotFoundException or InvalidOperationException)
            {
                report.Fail($"{AuditExportFiles.Checkpoints} line {line}: not a checkpoint ({e.GetType().Name})");
            }
        }

        return checkpoints;
    }

    private static MerkleTree CheckEntriesAndEvents(string folder, AuditManifest manifest, byte[]? coveringRoot, AuditReport report)
    {
        var tree = new MerkleTree();
        var replay = new ConsentReplay();
        using var proofChecks = new ProofChecker(manifest.TreeSize, coveringRoot, report);
        var previous = LedgerEntry.GenesisHash;
        using var events = new LineReader(folder, AuditExportFiles.AuditEvents);
        using var proofs = new LineReader(folder, AuditExportFiles.Proofs);
        using var lines = new LineReader(folder, AuditExportFiles.Entries);
        if (lines.Missing)
            report.Fail($"{AuditExportFiles.Entries}: missing");
        while (lines.Next() is { } bytes)
        {
            var line = lines.Line;
            LedgerEntry entry;
            byte[] body;
            long index;
            try
            {
                (index, body) = ReadEntryLine(bytes);
                entry = LedgerEntry.FromCanonicalBytes(body);
            }
            catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException or ArgumentException)
            {
                report.Fail($"{AuditExportFiles.Entries} line {line}: not a ledger entry ({e.GetType().Name})");
                continue;
            }

            var expected = tree.Size + 1;
            if (index != expected || entry.Index != index)
            {
                report.Fail(index > expected
                    ? $"{AuditExportFiles.Entries} line {line}: entries {expected} to {index - 1} are missing"
                    : $"{AuditExportFiles.Entries} line {line}: entry {entry.Index} is out of order (expected {expected})");
                if (index < expected)
                    continue;
            }

            if (!entry.PreviousHash.AsSpan().SequenceEqual(previous))
                report.Fail($"{AuditExportFiles.Entries} line {line}: entry {index} does not chain to the entry before it");
            var leaf = MerkleHash.Leaf(body);
            tree.AppendLeafHash(leaf);
            previous = leaf;
            report.Entries++;
            var decision = replay.Apply(entry);
            if (manifest.Filter.Matches(entry))
                CheckEvent(entry, leaf, decision, events, proofs, proofChecks, report);
        }

        proofChecks.Complete();
        if (tree.Size != manifest.TreeSize)
            report.Fail($"{AuditExportFiles.Entries}: {tree.Size} entries, but the export claims {manifest.TreeSize}");
        while (events.Next() is { } extra)
            report.Fail($"{AuditExportFiles.AuditEvents} line {events.Line}: an AuditEvent no exported entry calls for ({IndexOf(extra)?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "no ledger index"})");
        return tree;
    }

    // The next event must be this entry's, byte for byte, with a proof that the entry is in the covering checkpoint.
    private static void CheckEvent(LedgerEntry entry, byte[] leaf, Health.Consent.Policy.ConsentDecision? decision, LineReader events, LineReader proofs,
        ProofChecker proofChecks, AuditReport report)
    {
        var actual = events.Peek();
        if (actual is null || IndexOf(actual) is not { } actualIndex || actualIndex > entry.Index)
        {
            report.Fail($"{AuditExportFiles.AuditEvents}: the AuditEvent of ledger index {entry.Index} is missing");
            return;
        }

        events.Next();
        if (actualIndex < entry.Index)
        {
            report.Fail($"{AuditExportFiles.AuditEvents} line {events.Line}: the AuditEvent of ledger index {actualIndex} is out of order");
            CheckEvent(entry, leaf, decision, events, proofs, proofChecks, report);
            return;
        }

        if (!actual.AsSpan().SequenceEqual(AuditEventWriter.WriteShared(entry, leaf, decision)))
            report.Fail($"{AuditExportFiles.AuditEvents} line {events.Line}: the AuditEvent of ledger index {entry.Index} does not match its ledger entry");
        else
            report.CountEvent();
        proofChecks.Add(new ProofCheck(entry.Index, leaf, proofs.Next(), proofs.Line));
    }

    private sealed record ProofCheck(long Index, byte[] Leaf, byte[]? Proof, int ProofLine);

    // Inclusion proofs are independent of one another: they are checked in batches on the thread
    // pool while the single pass goes on, a few batches at a time so memory stays bounded.
    private sealed class ProofChecker(long treeSize, byte[]? coveringRoot, AuditReport report) : IDisposable
    {
        private const int BatchSize = 4096;
        private readonly Queue<Task> running = new();
        private List<ProofCheck> batch = new(BatchSize);

        public void Add(ProofCheck check)
        {
            batch.Add(check);
            if (batch.Count < BatchSize)
                return;
            var full = batch;
            batch = new(BatchSize);
            running.Enqueue(Task.Run(() => Check(full)));
            if (running.Count > Environment.ProcessorCount * 2)
                running.Dequeue().GetAwaiter().GetResult();
        }

        public void Complete()
        {
            Check(batch);
            batch = [];
            while (running.Count > 0)
                running.Dequeue().GetAwaiter().GetResult();
        }

        private void Check(List<ProofCheck> items)
        {
            var run = coveringRoot is null ? null : new InclusionProofRun(treeSize, coveringRoot);
            foreach (var (index, leaf, line, lineNumber) in items)
            {
                try
                {
                    var (proofIndex, proofTreeSize, path) = ReadProofLine(line ?? throw new FormatException("missing"));
                    if (proofIndex != index || proofTreeSize != treeSize || run is null || !run.Verify(index - 1, leaf, path))
                        report.Fail($"{AuditExportFiles.Proofs} line {lineNumber}: the inclusion proof of ledger index {index} does not lead to the covering checkpoint");
                }
                catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException)
                {
                    report.Fail($"{AuditExportFiles.Proofs} line {lineNumber}: no inclusion proof for ledger index {index} ({e.GetType().Name})");
                }
            }
        }

        public void Dispose()
        {
            while (running.Count > 0)
                running.Dequeue().Wait();
        }
    }

    // {"index":N,"canonical":"base64"}, read without building a document.
    private static (long Index, byte[] Body) ReadEntryLine(byte[] line)
    {
        var reader = new Utf8JsonReader(line);
        long? index = null;
        byte[]? body = null;
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName)
                continue;
            if (reader.ValueTextEquals("index"u8) && reader.Read())
                index = reader.GetInt64();
            else if (reader.ValueTextEquals("canonical"u8) && reader.Read())
                body = reader.GetBytesFromBase64();
        }

        return (index ?? throw new FormatException("no index"), body ?? throw new FormatException("no canonical bytes"));
    }

    // {"index":N,"treeSize":T,"path":["hex",...]}, read without building a document.
    private static (long Index, long TreeSize, List<byte[]> Path) ReadProofLine(byte[] line)
    {
        var reader = new Utf8JsonReader(line);
        long? index = null, treeSize = null;
        var path = new List<byte[]>(32);
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName)
                continue;
            if (reader.ValueTextEquals("index"u8) && reader.Read())
                index = reader.GetInt64();
            else if (reader.ValueTextEquals("treeSize"u8) && reader.Read())
                treeSize = reader.GetInt64();
            else if (reader.ValueTextEquals("path"u8) && reader.Read())
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.String)
                    path.Add(Convert.FromHexString(reader.GetString()!));
            }
        }

        return (index ?? throw new FormatException("no index"), treeSize ?? throw new FormatException("no tree size"), path);
    }

    private static void CheckConsistency(string folder, List<SignedCheckpoint> checkpoints, AuditReport report)
    {
        var roots = checkpoints.GroupBy(c => c.TreeSize).ToDictionary(g => g.Key, g => g.First().Root);
        var proven = 0;
        foreach (var (line, json) in Lines(folder, AuditExportFiles.Consistency, report))
        {
            try
            {
                var (from, to) = (json.GetProperty("from").GetInt64(), json.GetProperty("to").GetInt64());
                var path = json.GetProperty("path").EnumerateArray().Select(p => Convert.FromHexString(p.GetString()!)).ToList();
                if (!roots.TryGetValue(from, out var first) || !roots.TryGetValue(to, out var second) || !new ConsistencyProof(from, to, path).Verify(first, second))
                    report.Fail($"{AuditExportFiles.Consistency} line {line}: tree size {to} is not proven to extend tree size {from}");
                else
                    proven++;
            }
            catch (Exception e) when (e is FormatException or KeyNotFoundException or InvalidOperationException)
            {
                report.Fail($"{AuditExportFiles.Consistency} line {line}: not a consistency proof ({e.GetType().Name})");
            }
        }

        if (proven < checkpoints.Count - 1)
            report.Fail($"{AuditExportFiles.Consistency}: {proven} proofs for {checkpoints.Count} checkpoints; each needs one to the next");
    }

    private static readonly byte[] IndexMarker = System.Text.Encoding.UTF8.GetBytes($"{{\"url\":\"{AuditEventWriter.LedgerIndexExtension}\",\"valueString\":\"");

    // The ledger index an event names, found by its extension's fixed form rather than a full parse.
    private static long? IndexOf(byte[] auditEvent)
    {
        var span = auditEvent.AsSpan();
        var at = span.IndexOf(IndexMarker);
        if (at < 0)
            return null;
        var digits = span[(at + IndexMarker.Length)..];
        var end = digits.IndexOf((byte)'"');
        return end > 0 && System.Buffers.Text.Utf8Parser.TryParse(digits[..end], out long index, out var consumed) && consumed == end ? index : null;
    }

    private static IEnumerable<(int Line, JsonElement Json)> Lines(string folder, string file, AuditReport report)
    {
        using var reader = new LineReader(folder, file);
        while (reader.Next() is { } bytes)
        {
            JsonElement element;
            try
            {
                using var document = JsonDocument.Parse(bytes);
                element = document.RootElement.Clone();
            }
            catch (JsonException)
            {
                report.Fail($"{file} line {reader.Line}: not valid JSON");
                continue;
            }

            yield return (reader.Line, element);
        }

        if (reader.Missing)
            report.Fail($"{file}: missing");
    }

    // Reads a file line by line as UTF-8 bytes (no text decoding), with one line of look-ahead.
    private sealed class LineReader : IDisposable
    {
        private readonly FileStream? stream;
        private readonly byte[] buffer = new byte[1 << 16];
        private int start;
        private int end;
        private byte[]? peeked;

        public LineReader(string folder, string file)
        {
            var path = Path.Combine(folder, file);
            Missing = !File.Exists(path);
            if (!Missing)
                stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        }

        public bool Missing { get; }

        public int Line { get; private set; }

        public byte[]? Peek() => peeked ??= ReadLine();

        public byte[]? Next()
        {
            var line = Peek();
            peeked = null;
            if (line is not null)
                Line++;
            return line;
        }

        private byte[]? ReadLine()
        {
            if (stream is null)
                return null;
            List<byte>? longLine = null;
            while (true)
            {
                var newline = buffer.AsSpan(start, end - start).IndexOf((byte)'\n');
                if (newline >= 0)
                {
                    var line = buffer.AsSpan(start, newline);
                    start += newline + 1;
                    if (longLine is null && line.IsEmpty)
                        continue;
                    return longLine is null ? line.ToArray() : [.. longLine, .. line.ToArray()];
                }

                // Keep the partial line and read more.
                (longLine ??= []).AddRange(buffer.AsSpan(start, end - start).ToArray());
                start = 0;
                end = stream.Read(buffer, 0, buffer.Length);
                if (end == 0)
                    return longLine.Count == 0 ? null : [.. longLine];
                if (longLine.Count == 0)
                    longLine = null;
            }
        }

        public void Dispose() => stream?.Dispose();
    }
}
