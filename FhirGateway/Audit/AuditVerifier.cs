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
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(authority);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                chain.ChainPolicy.VerificationTime = certificate.NotBefore.AddMinutes(10);
                if (!chain.Build(certificate) || !chain.ChainElements[^1].Certificate.RawData.AsSpan().SequenceEqual(authority.RawData))
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
        var previous = LedgerEntry.GenesisHash;
        using var events = new LineReader(folder, AuditExportFiles.AuditEvents);
        using var proofs = new LineReader(folder, AuditExportFiles.Proofs);
        foreach (var (line, json) in Lines(folder, AuditExportFiles.Entries, report))
        {
            LedgerEntry entry;
            byte[] body;
            long index;
            try
            {
                index = json.GetProperty("index").GetInt64();
                body = Convert.FromBase64String(json.GetProperty("canonical").GetString()!);
                entry = LedgerEntry.FromCanonicalBytes(body);
            }
            catch (Exception e) when (e is FormatException or KeyNotFoundException or InvalidOperationException or ArgumentException)
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
                CheckEvent(entry, leaf, decision, events, proofs, manifest.TreeSize, coveringRoot, report);
        }

        if (tree.Size != manifest.TreeSize)
            report.Fail($"{AuditExportFiles.Entries}: {tree.Size} entries, but the export claims {manifest.TreeSize}");
        while (events.Next() is { } extra)
            report.Fail($"{AuditExportFiles.AuditEvents} line {events.Line}: an AuditEvent no exported entry calls for ({IndexOf(extra)?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "no ledger index"})");
        return tree;
    }

    // The next event must be this entry's, byte for byte, with a proof that the entry is in the covering checkpoint.
    private static void CheckEvent(LedgerEntry entry, byte[] leaf, Health.Consent.Policy.ConsentDecision? decision, LineReader events, LineReader proofs,
        long treeSize, byte[]? coveringRoot, AuditReport report)
    {
        var expected = AuditEventWriter.Write(entry, leaf, decision);
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
            CheckEvent(entry, leaf, decision, events, proofs, treeSize, coveringRoot, report);
            return;
        }

        if (!actual.AsSpan().SequenceEqual(expected))
            report.Fail($"{AuditExportFiles.AuditEvents} line {events.Line}: the AuditEvent of ledger index {entry.Index} does not match its ledger entry");
        else
            report.Events++;

        var proofLine = proofs.Next();
        try
        {
            using var proof = JsonDocument.Parse(proofLine ?? throw new FormatException("missing"));
            var root = proof.RootElement;
            var path = root.GetProperty("path").EnumerateArray().Select(p => Convert.FromHexString(p.GetString()!)).ToList();
            if (root.GetProperty("index").GetInt64() != entry.Index || root.GetProperty("treeSize").GetInt64() != treeSize || coveringRoot is null
                || !new InclusionProof(entry.Index - 1, treeSize, path).Verify(leaf, coveringRoot))
                report.Fail($"{AuditExportFiles.Proofs} line {proofs.Line}: the inclusion proof of ledger index {entry.Index} does not lead to the covering checkpoint");
        }
        catch (Exception e) when (e is FormatException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            report.Fail($"{AuditExportFiles.Proofs} line {proofs.Line}: no inclusion proof for ledger index {entry.Index} ({e.GetType().Name})");
        }
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

    private static long? IndexOf(byte[] auditEvent)
    {
        try
        {
            using var document = JsonDocument.Parse(auditEvent);
            foreach (var extension in document.RootElement.GetProperty("extension").EnumerateArray())
            {
                if (extension.GetProperty("url").GetString() == AuditEventWriter.LedgerIndexExtension
                    && long.TryParse(extension.GetProperty("valueString").GetString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index))
                    return index;
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
        }

        return null;
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

    // Reads a file line by line as UTF-8 bytes, with one line of look-ahead.
    private sealed class LineReader : IDisposable
    {
        private readonly StreamReader? reader;
        private byte[]? peeked;

        public LineReader(string folder, string file)
        {
            var path = Path.Combine(folder, file);
            Missing = !File.Exists(path);
            if (!Missing)
                reader = new StreamReader(path, System.Text.Encoding.UTF8, false, 1 << 16);
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
            if (reader is null)
                return null;
            string? text;
            do
            {
                text = reader.ReadLine();
            }
            while (text is { Length: 0 });
            return text is null ? null : System.Text.Encoding.UTF8.GetBytes(text);
        }

        public void Dispose() => reader?.Dispose();
    }
}
