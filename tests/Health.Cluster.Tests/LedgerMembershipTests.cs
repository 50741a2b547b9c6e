using System.Net;
using System.Net.Http.Json;

namespace Health.Cluster.Tests;

public sealed class LedgerMembershipTests
{
    [Fact]
    public async Task Group_grows_to_four_members_and_shrinks_back_to_three()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var token = timeout.Token;
        using var cluster = new LedgerCluster();
        try
        {
            var leader = await cluster.WaitForLeaderAsync(token);
            await cluster.AppendAsync(leader, "before-join", token);

            // Admission first: a majority of the members' operators approve node4.
            await cluster.ProposeAndApproveAsync("admit", "node4", new string('0', 64), approvals: 2, token);
            var (joining, member) = cluster.StartJoiningNode("node4");
            await cluster.WaitForHealthAsync(joining, token);
            var parts = member.Split('=', 3);
            var follower = cluster.Nodes.First(n => n != leader && n != joining);
            using (var added = await cluster.Client.PostAsJsonAsync(new Uri(follower.HttpUrl, "/ledger/members"),
                       new { nodeId = parts[0], raftEndPoint = parts[1], httpUrl = parts[2] }, token))
                Assert.Equal(HttpStatusCode.OK, added.StatusCode);

            // The new member takes appends and holds the same ledger as the others.
            var index = await cluster.AppendAsync(joining, "through-node4", token);
            var statuses = await cluster.WaitForConvergenceAsync(index, token);
            Assert.All(statuses, s => Assert.Equal(4, s.Members.Count));

            // Shrink: remove a follower of the original three, then stop it and one more member.
            // Two of the remaining three still make a majority only because the group is three again.
            var removed = cluster.Nodes.First(n => n != leader && n != joining);
            using (var response = await cluster.Client.DeleteAsync(new Uri(joining.HttpUrl, $"/ledger/members/{removed.NodeId}"), token))
                Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
            removed.Kill();
            var stopped = cluster.Nodes.First(n => n != leader && n != removed && n.IsRunning);
            stopped.Kill();

            var afterShrink = await cluster.AppendAsync(leader, "after-shrink", token);
            var remaining = await cluster.WaitForConvergenceAsync(afterShrink, token);
            Assert.All(remaining, s => Assert.Equal(3, s.Members.Count));
            Assert.All(remaining, s => Assert.DoesNotContain(s.Members, m => m.NodeId == removed.NodeId));
        }
        catch (Exception e) when (e is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            throw new InvalidOperationException(cluster.Diagnostics(), e);
        }
    }

    [Fact]
    public async Task Adding_an_existing_member_is_a_conflict()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        using var cluster = new LedgerCluster();
        var leader = await cluster.WaitForLeaderAsync(timeout.Token);
        var status = (await cluster.TryStatusAsync(leader, timeout.Token))!;
        var existing = status.Members[0];
        using var response = await cluster.Client.PostAsJsonAsync(new Uri(leader.HttpUrl, "/ledger/members"),
            new { nodeId = existing.NodeId, raftEndPoint = existing.RaftEndPoint, httpUrl = existing.HttpUrl }, timeout.Token);
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        using var bad = await cluster.Client.PostAsJsonAsync(new Uri(leader.HttpUrl, "/ledger/members"),
            new { nodeId = "node9", raftEndPoint = "not-an-endpoint", httpUrl = "http://127.0.0.1:1" }, timeout.Token);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        using var missing = await cluster.Client.DeleteAsync(new Uri(leader.HttpUrl, "/ledger/members/node9"), timeout.Token);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }
}
