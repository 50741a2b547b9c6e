using Health.Ledger.Entries;
using Health.Ledger.Merkle;

namespace Health.Ledger.Tests.Entries;

public sealed class LedgerEntryTests
{
    private static LedgerEntry Sample(long index = 7, byte[]? previous = null) => new(
        index, 1_795_000_000_000, previous ?? LedgerEntry.GenesisHash, "RecordsLocated",
        new Dictionary<string, string> { ["patientKey"] = "pk1", ["custodian"] = "node1", ["contentHash"] = "ab" });

    [Fact]
    public void Canonical_bytes_are_pinned()
    {
        // Changing these bytes changes every hash on every ledger: it needs a new format version.
        Assert.Equal(
            "01" + "0000000000000007" + "000001a1ee565e00" + new string('0', 64)
            + "000e" + "5265636f7264734c6f6361746564" + "0003"
            + "000b" + "636f6e74656e7448617368" + "00000002" + "6162"
            + "0009" + "637573746f6469616e" + "00000005" + "6e6f646531"
            + "000a" + "70617469656e744b6579" + "00000003" + "706b31",
            Convert.ToHexStringLower(Sample().ToCanonicalBytes()));
    }

    [Fact]
    public void Leaf_hash_is_pinned()
        => Assert.Equal("874e517315899bdfc13dbeec13c0a7aeb836d81e4026ce18f0a1ceda763f8ded", Convert.ToHexStringLower(Sample().LeafHash()));

    [Fact]
    public void Field_order_does_not_change_the_bytes()
    {
        var reordered = Sample() with
        {
            Fields = new Dictionary<string, string> { ["contentHash"] = "ab", ["patientKey"] = "pk1", ["custodian"] = "node1" },
        };
        Assert.Equal(Sample().ToCanonicalBytes(), reordered.ToCanonicalBytes());
    }

    [Fact]
    public void A_field_larger_than_the_encoding_buffer_is_written_whole_in_UTF8()
    {
        // 30,000 bytes of one-, two-, three- and four-byte characters: the buffer grows several times.
        var note = string.Concat(Enumerable.Repeat("aé€😀", 3000));
        var entry = Sample() with { Kind = "OperatorNote", Fields = new Dictionary<string, string> { ["topic"] = "ü", ["note"] = note } };

        var bytes = entry.ToCanonicalBytes();

        var header = Convert.FromHexString("01" + "0000000000000007" + "000001a1ee565e00" + new string('0', 64) + "000c" + Convert.ToHexString("OperatorNote"u8) + "0002");
        var noteField = Convert.FromHexString("0004" + Convert.ToHexString("note"u8) + "00007530");
        var topicField = Convert.FromHexString("0005" + Convert.ToHexString("topic"u8) + "00000002" + "c3bc");
        Assert.Equal([.. header, .. noteField, .. System.Text.Encoding.UTF8.GetBytes(note), .. topicField], bytes);
        Assert.Equal(note, LedgerEntry.FromCanonicalBytes(bytes).Fields["note"]);
    }

    [Fact]
    public void Canonical_bytes_round_trip()
    {
        var entry = Sample(previous: MerkleHash.Leaf([1, 2, 3]));
        var parsed = LedgerEntry.FromCanonicalBytes(entry.ToCanonicalBytes());
        Assert.Equal(entry.ToCanonicalBytes(), parsed.ToCanonicalBytes());
        Assert.Equal(entry.Fields, parsed.Fields);
    }

    [Fact]
    public void Each_entry_chains_to_its_predecessor_hash()
    {
        var first = Sample(index: 1);
        var second = Sample(index: 2, previous: first.LeafHash());
        Assert.Equal(first.LeafHash(), second.PreviousHash);
        var forgedFirst = first with { Fields = new Dictionary<string, string>(first.Fields) { ["custodian"] = "node2" } };
        Assert.NotEqual(forgedFirst.LeafHash(), second.PreviousHash);
    }

    [Theory]
    [InlineData("")]
    [InlineData("02")]
    [InlineData("01000000")]
    public void Malformed_bytes_are_rejected(string hex)
        => Assert.Throws<FormatException>(() => LedgerEntry.FromCanonicalBytes(Convert.FromHexString(hex)));

    [Fact]
    public void Trailing_bytes_are_rejected()
        => Assert.Throws<FormatException>(() => LedgerEntry.FromCanonicalBytes([.. Sample().ToCanonicalBytes(), 0]));

    [Fact]
    public void Registry_rejects_unknown_kinds_and_fields()
    {
        var registry = new EntryKindRegistry();
        Assert.Null(registry.ValidateClientCommand(new LedgerCommand("OperatorNote", new Dictionary<string, string> { ["note"] = "n4" })));
        Assert.Contains("Unknown entry kind", registry.ValidateClientCommand(new LedgerCommand("Nope", new Dictionary<string, string>())));
        Assert.Contains("not defined", registry.ValidateClientCommand(new LedgerCommand("OperatorNote", new Dictionary<string, string> { ["note"] = "n4", ["x"] = "y" })));
        Assert.Contains("required", registry.ValidateClientCommand(new LedgerCommand("OperatorNote", new Dictionary<string, string>())));
        Assert.Contains("written by the ledger", registry.ValidateClientCommand(new LedgerCommand("Checkpoint", new Dictionary<string, string>())));
    }

    [Theory]
    [InlineData("line\nbreak", false)]
    [InlineData("tab\there", false)]
    [InlineData("nul\0", false)]
    [InlineData("delete\u007F", false)]
    [InlineData("next line \u0085", false)]
    [InlineData("last C1 \u009F", false)]
    [InlineData("non-breaking\u00A0space, café, 東京", true)]
    [InlineData("", true)]
    public void Registry_refuses_field_values_with_control_characters(string topic, bool accepted)
    {
        var problem = new EntryKindRegistry().ValidateClientCommand(new LedgerCommand("OperatorNote", new Dictionary<string, string> { ["note"] = "n", ["topic"] = topic }));
        Assert.Equal(topic.Any(char.IsControl), !accepted);
        if (accepted)
            Assert.Null(problem);
        else
            Assert.Contains("control characters", problem);
    }
}
