using YamlDotNet.RepresentationModel;

namespace Health.Cluster.Tests;

/// <summary>
/// No container engine runs here, so compose.yaml is checked against what the nodes need: every
/// service runs a node of its own name, all share one member list that names each service at its
/// fixed address, ports, data volumes and certificates line up.
/// </summary>
public sealed class DeploymentTests
{
    private static YamlMappingNode Load()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(directory!.FullName, "Health.sln")))
            directory = directory.Parent;
        var stream = new YamlStream();
        using var reader = new StreamReader(Path.Combine(directory.FullName, "compose.yaml"));
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static YamlMappingNode Map(YamlNode node, string key) => (YamlMappingNode)((YamlMappingNode)node)[key];

    private static List<string> List(YamlNode node, string key) => ((YamlSequenceNode)((YamlMappingNode)node)[key]).Children.Select(c => ((YamlScalarNode)c).Value!).ToList();

    private static string Option(List<string> command, string name) => command[command.IndexOf(name) + 1];

    [Fact]
    public void Compose_services_match_the_node_configuration()
    {
        var compose = Load();
        var services = Map(compose, "services");
        var declaredVolumes = Map(compose, "volumes").Children.Keys.Select(k => ((YamlScalarNode)k).Value).ToHashSet();
        var memberLists = new List<string>();
        Assert.Equal(["node1", "node2", "node3"], services.Children.Keys.Select(k => ((YamlScalarNode)k).Value!).Order());
        foreach (var (key, service) in services.Children)
        {
            var name = ((YamlScalarNode)key).Value!;
            var command = List(service, "command");
            Assert.Equal("run", command[0]);
            Assert.Equal(name, Option(command, "--node-id"));

            var members = command.Select((value, i) => (value, i)).Where(p => p.value == "--member").Select(p => command[p.i + 1]).ToList();
            memberLists.Add(string.Join(' ', members));
            var address = ((YamlScalarNode)Map(Map(service, "networks"), "consortium")["ipv4_address"]).Value!;
            var self = members.Single(m => m.StartsWith(name + "=", StringComparison.Ordinal)).Split('=');
            Assert.Equal(address, self[1].Split(':')[0]);

            var http = new Uri(Option(command, "--http"));
            Assert.Equal("https", http.Scheme);
            Assert.Equal(new Uri(self[2]).Port, http.Port);
            Assert.Equal(http.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), List(service, "ports").Single().Split(':')[^1]);

            var volumes = List(service, "volumes");
            var data = volumes.Single(v => v.EndsWith(":" + Option(command, "--data"), StringComparison.Ordinal)).Split(':')[0];
            Assert.Contains(data, declaredVolumes);
            Assert.Equal($"{name}-data", data);
            var certificates = volumes.Single(v => v.EndsWith(":ro", StringComparison.Ordinal)).Split(':')[1];
            Assert.Equal($"{certificates}/{name}.pem", Option(command, "--tls-cert"));
            Assert.Equal($"{certificates}/{name}.key", Option(command, "--tls-key"));
            Assert.StartsWith(certificates + "/", Option(command, "--tls-ca"), StringComparison.Ordinal);
            Assert.True(((YamlMappingNode)service).Children.ContainsKey("healthcheck"));
        }

        Assert.Single(memberLists.Distinct());
        Assert.Equal(3, memberLists[0].Split(' ').Length);
    }
}
