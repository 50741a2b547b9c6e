using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Health.Cluster.Tests.Fhir;

/// <summary>A record store written with the earlier search-index layout is indexed again when its node starts.</summary>
public sealed class IndexUpgradeTests
{
    /// <param name="layout">0: rows named the resource by type and id; 2: token rows keyed by type and parameter before the token.</param>
    [SyntheaTheory]
    [InlineData(0)]
    [InlineData(2)]
    public async Task Store_with_an_earlier_index_layout_is_reindexed_at_start_and_answers_searches_as_before(int layout)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var token = timeout.Token;
        using var cluster = new LedgerCluster(size: 1);
        try
        {
            await cluster.WaitForLeaderAsync(token);
            var node = cluster.Nodes[0];
            var patient = await cluster.IngestFirstPatientAsync(node, token);
            var clinician = await cluster.MintTokenAsync("--role", "clinician", "--org", node.NodeId);
            string[] queries =
            [
                $"Observation?patient={patient}&_count=500",
                $"Observation?patient={patient}&date=ge2015-01-01&_count=500",
                $"Condition?subject=Patient/{patient}&_sort=-onset-date&_count=500",
                $"Encounter?patient={patient}&status=finished&_count=500",
                $"Patient?_id={patient}",
            ];
            var before = await SearchAllAsync(cluster, node, clinician, queries, token);
            Assert.All(before, ids => Assert.NotEmpty(ids));

            node.Stop();
            ToEarlierLayout(Path.Combine(node.DataDirectory, "records", "records.db"), layout);
            node.Start();
            await cluster.WaitForLeaderAsync(token);

            Assert.Contains("search index was rebuilt", node.Output, StringComparison.Ordinal);
            Assert.Equal(before, await SearchAllAsync(cluster, node, clinician, queries, token));
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(cluster.Diagnostics(), e);
        }
    }

    // What the old rows held does not matter: they are dropped. Layout 0 (before the index was keyed
    // by insertion sequence) recorded no layout in the file.
    private static void ToEarlierLayout(string database, int layout)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = database, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = layout == 0
            ? """
              DROP TABLE search_tokens;
              DROP TABLE search_dates;
              CREATE TABLE search_tokens(type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, token BLOB NOT NULL, PRIMARY KEY(type, param, token, id)) WITHOUT ROWID;
              CREATE TABLE search_dates(type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL);
              PRAGMA user_version = 0;
              """
            : """
              DROP TABLE search_tokens;
              CREATE TABLE search_tokens(type TEXT NOT NULL, param TEXT NOT NULL, token BLOB NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(type, param, token, seq)) WITHOUT ROWID;
              PRAGMA user_version = 2;
              """;
        command.ExecuteNonQuery();
    }

    private static async Task<List<List<string>>> SearchAllAsync(LedgerCluster cluster, NodeProcess node, string bearer, string[] queries, CancellationToken token)
    {
        var results = new List<List<string>>();
        foreach (var query in queries)
        {
            using var response = await cluster.SendFhirAsync(HttpMethod.Get, node, query, bearer, null, token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var bundle = await response.Content.ReadFromJsonAsync<JsonElement>(token);
            results.Add(bundle.TryGetProperty("entry", out var entries)
                ? [.. entries.EnumerateArray().Select(e => e.GetProperty("resource").GetProperty("id").GetString()!)]
                : []);
        }

        return results;
    }
}
