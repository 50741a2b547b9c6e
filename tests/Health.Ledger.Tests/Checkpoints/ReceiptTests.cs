using System.Security.Cryptography;
using Health.Ledger.Checkpoints;
using Health.Ledger.Entries;
using Health.Ledger.Merkle;

namespace Health.Ledger.Tests.Checkpoints;

public sealed class ReceiptTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("receipt-tests").FullName;
    private readonly NodeSigningKey key;
    private readonly List<byte[]> entries = [];
    private readonly MerkleTree tree = new();

    public ReceiptTests()
    {
        key = NodeSigningKey.LoadOrCreate(Path.Combine(directory, "key.pem"));
        var previous = LedgerEntry.GenesisHash;
        for (var i = 1; i <= 10; i++)
        {
            var entry = new LedgerEntry(i, 1000 + i, previous, "NodeRemoved", new Dictionary<string, string> { ["nodeId"] = $"n{i}" });
            entries.Add(entry.ToCanonicalBytes());
            previous = entry.LeafHash();
            tree.AppendLeafHash(previous);
        }
    }

    private Dictionary<string, ECDsa> Trusted => new() { [key.KeyId] = key.Key };

    private Receipt ReceiptFor(int index)
        => new(entries[index - 1], tree.ProveInclusion(index - 1, 10), SignedCheckpoint.Sign(10, tree.Root(10), "node1", key));

    [Fact]
    public void A_receipt_verifies_offline_with_the_signer_key()
    {
        for (var i = 1; i <= 10; i++)
            Assert.Null(ReceiptFor(i).Verify(Trusted));
    }

    [Fact]
    public void Key_survives_a_reload_from_disk()
    {
        using var reloaded = NodeSigningKey.LoadOrCreate(Path.Combine(directory, "key.pem"));
        Assert.Equal(key.KeyId, reloaded.KeyId);
        Assert.Null(ReceiptFor(3).Verify(new Dictionary<string, ECDsa> { [reloaded.KeyId] = reloaded.Key }));
    }

    [Fact]
    public void Tampered_receipts_are_refused_with_the_reason()
    {
        var receipt = ReceiptFor(4);
        var tamperedEntry = (byte[])receipt.EntryBytes.Clone();
        tamperedEntry[^1] ^= 1;
        Assert.Contains("root", (receipt with { EntryBytes = tamperedEntry }).Verify(Trusted));
        var tamperedSignature = (byte[])receipt.Checkpoint.Signature.Clone();
        tamperedSignature[5] ^= 1;
        Assert.Contains("signature", (receipt with { Checkpoint = receipt.Checkpoint with { Signature = tamperedSignature } }).Verify(Trusted));
        var otherRoot = (byte[])receipt.Checkpoint.Root.Clone();
        otherRoot[0] ^= 1;
        Assert.Contains("signature", (receipt with { Checkpoint = receipt.Checkpoint with { Root = otherRoot } }).Verify(Trusted));
        Assert.Contains("position", (receipt with { EntryBytes = entries[4] }).Verify(Trusted));
        Assert.Contains("unknown key", receipt.Verify(new Dictionary<string, ECDsa>()));
    }

    [Fact]
    public void A_checkpoint_signed_by_another_key_is_refused()
    {
        using var stranger = NodeSigningKey.LoadOrCreate(Path.Combine(directory, "stranger.pem"));
        var forged = ReceiptFor(2) with { Checkpoint = SignedCheckpoint.Sign(10, tree.Root(10), "node1", stranger) with { KeyId = key.KeyId } };
        Assert.Contains("signature", forged.Verify(Trusted));
    }

    [Fact]
    public void Checkpoint_round_trips_through_its_ledger_fields()
    {
        var checkpoint = SignedCheckpoint.Sign(10, tree.Root(10), "node1", key);
        var parsed = SignedCheckpoint.FromFields(checkpoint.ToCommand().Fields);
        Assert.True(parsed.Verify(key.Key));
        Assert.Equal(checkpoint.Root, parsed.Root);
    }

    public void Dispose()
    {
        key.Dispose();
        Directory.Delete(directory, recursive: true);
    }
}
