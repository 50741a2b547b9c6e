using System.Text.Json;
using System.Text.Json.Serialization;

namespace Health.FhirGateway.Cli;

/// <summary>
/// A node's configuration file (<c>node.json</c>, made by <c>health-node init</c>). <c>run</c> reads
/// it; environment variables (<c>HEALTH_NODE_ID</c>, <c>HEALTH_HTTP</c>, <c>HEALTH_DATA</c>,
/// <c>HEALTH_MEMBERS</c>, <c>HEALTH_SNAPSHOT_INTERVAL</c>, <c>HEALTH_ELECTION_TIMEOUT</c>, <c>HEALTH_PSEUDONYM_KEY</c>,
/// <c>HEALTH_DEV_ISSUER_KEY</c>, <c>HEALTH_TLS_CERT</c>, <c>HEALTH_TLS_KEY</c>, <c>HEALTH_TLS_CA</c>,
/// <c>HEALTH_LOG_FORMAT</c>) override it, and options on the command line override both.
/// </summary>
internal sealed record NodeConfig
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public string? NodeId { get; init; }

    public string? Http { get; init; }

    public string? Data { get; init; }

    public string[]? Members { get; init; }

    public long? SnapshotInterval { get; init; }

    public int? ElectionTimeout { get; init; }

    public string? PseudonymKey { get; init; }

    public string? DevIssuerKey { get; init; }

    public string? TlsCert { get; init; }

    public string? TlsKey { get; init; }

    public string? TlsCa { get; init; }

    public string? LogFormat { get; init; }

    public static NodeConfig Load(FileInfo file)
    {
        try
        {
            return JsonSerializer.Deserialize<NodeConfig>(File.ReadAllText(file.FullName), Json) ?? new NodeConfig();
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            throw new CommandLineFailure($"--config {file.FullName} cannot be read: {e.Message}");
        }
    }

    public void Save(string path) => File.WriteAllText(path, JsonSerializer.Serialize(this, Json));

    /// <summary>This configuration with the environment's HEALTH_* variables laid over it.</summary>
    public NodeConfig WithEnvironment()
    {
        static string? Variable(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;
        static T? Number<T>(string name, T? otherwise)
            where T : struct, IParsable<T>
            => Variable(name) is not { } text ? otherwise
                : T.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var number) ? number
                : throw new CommandLineFailure($"{name} is not a number.");
        return this with
        {
            NodeId = Variable("HEALTH_NODE_ID") ?? NodeId,
            Http = Variable("HEALTH_HTTP") ?? Http,
            Data = Variable("HEALTH_DATA") ?? Data,
            Members = Variable("HEALTH_MEMBERS")?.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries) ?? Members,
            SnapshotInterval = Number("HEALTH_SNAPSHOT_INTERVAL", SnapshotInterval),
            ElectionTimeout = Number("HEALTH_ELECTION_TIMEOUT", ElectionTimeout),
            PseudonymKey = Variable("HEALTH_PSEUDONYM_KEY") ?? PseudonymKey,
            DevIssuerKey = Variable("HEALTH_DEV_ISSUER_KEY") ?? DevIssuerKey,
            TlsCert = Variable("HEALTH_TLS_CERT") ?? TlsCert,
            TlsKey = Variable("HEALTH_TLS_KEY") ?? TlsKey,
            TlsCa = Variable("HEALTH_TLS_CA") ?? TlsCa,
            LogFormat = Variable("HEALTH_LOG_FORMAT") ?? LogFormat,
        };
    }
}
