using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;

namespace Health.Cluster.Tests;

/// <summary>One <c>health-node run</c> in its own OS process, with its output kept for diagnosis.</summary>
public sealed class NodeProcess : IDisposable
{
    private readonly string[] arguments;
    private readonly StringBuilder output = new();
    private Process? process;
    private bool expectedRunning;

    public NodeProcess(string nodeId, Uri httpUrl, string dataDirectory, IEnumerable<string> members, IEnumerable<string> extraArguments)
    {
        NodeId = nodeId;
        HttpUrl = httpUrl;
        DataDirectory = dataDirectory;
        arguments = ["run", "--node-id", nodeId, "--http", httpUrl.ToString(), "--data", dataDirectory, .. members.SelectMany(m => new[] { "--member", m }), .. extraArguments];
    }

    /// <summary>A node started with its configuration file (<c>run --config</c>).</summary>
    public NodeProcess(string nodeId, Uri httpUrl, string dataDirectory, string configFile)
    {
        NodeId = nodeId;
        HttpUrl = httpUrl;
        DataDirectory = dataDirectory;
        arguments = ["run", "--config", configFile];
    }

    public string NodeId { get; }

    /// <summary>Environment variables the node process starts with (configuration such as <c>AzureAd__Instance</c>).</summary>
    public Dictionary<string, string> Environment { get; } = [];

    public Uri HttpUrl { get; }

    public string DataDirectory { get; }

    public bool IsRunning => process is { HasExited: false };

    /// <summary>Throws when the process exited although nobody killed it.</summary>
    public void ThrowIfCrashed()
    {
        if (expectedRunning && process is { HasExited: true })
            throw new InvalidOperationException($"{NodeId} exited with code {process.ExitCode}:\n{Output}");
    }

    public string Output
    {
        get
        {
            lock (output)
                return output.ToString();
        }
    }

    public void Start()
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(NodeExecutable());
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        foreach (var (name, value) in Environment)
            start.Environment[name] = value;
        process = Process.Start(start) ?? throw new InvalidOperationException("The node process did not start.");
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        expectedRunning = true;
    }

    /// <summary>kill -9: no shutdown code runs.</summary>
    public void Kill()
    {
        expectedRunning = false;
        if (process is { HasExited: false })
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
    }

    /// <summary>SIGTERM, then waits for the node to shut down cleanly.</summary>
    public void Stop()
    {
        expectedRunning = false;
        Signal("TERM");
        process?.WaitForExit();
    }

    /// <summary>SIGSTOP: the process freezes as a partitioned or very slow node would.</summary>
    public void Pause() => Signal("STOP");

    /// <summary>SIGCONT after <see cref="Pause"/>.</summary>
    public void Resume() => Signal("CONT");

    private void Signal(string signal)
    {
        if (process is not { HasExited: false } running)
            return;
        using var kill = Process.Start("kill", [$"-{signal}", running.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public void Dispose()
    {
        Resume();
        Kill();
        process?.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (output)
        {
            output.AppendLine(line);
            Monitor.PulseAll(output);
        }
    }

    /// <summary>Waits until the node has printed <paramref name="text"/> (the log reaches the pipe after the answer it belongs to).</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        await Task.Run(() =>
        {
            var deadline = DateTime.UtcNow + timeout;
            lock (output)
            {
                while (!output.ToString().Contains(text, StringComparison.Ordinal))
                {
                    var left = deadline - DateTime.UtcNow;
                    if (left <= TimeSpan.Zero || !Monitor.Wait(output, left))
                        throw new TimeoutException($"{NodeId} did not print \"{text}\" within {timeout.TotalSeconds:0} s:\n{output}");
                }
            }
        });
    }

    /// <summary>Runs a short health-node verb and returns what it printed; fails on a non-zero exit.</summary>
    public static async Task<string> RunToolAsync(string[] arguments)
    {
        var (exitCode, output, error) = await RunToolForExitCodeAsync(arguments);
        return exitCode == 0 ? output.Trim() : throw new InvalidOperationException($"health-node {arguments[0]} exited {exitCode}: {error}");
    }

    /// <summary>Runs a <c>health-node</c> command to its end, whatever its exit code.</summary>
    public static async Task<(int ExitCode, string Output, string Error)> RunToolForExitCodeAsync(string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(NodeExecutable());
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output, await error);
    }

    /// <summary>The built health-node.dll.</summary>
    public static string Executable => NodeExecutable();

    private static string NodeExecutable()
    {
        var configuration = typeof(NodeProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "Configuration").Value;
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Health.sln")))
            directory = directory.Parent;
        var path = Path.Combine(directory?.FullName ?? ".", "FhirGateway", "bin", configuration!, "net10.0", "health-node.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException("Build the solution first; the node executable is missing.", path);
    }

    // Ports below the kernel's ephemeral range (32768 and up on Linux), so that no outgoing
    // connection takes a port between the moment it is picked and the moment a node binds it;
    // each is handed out once per test run.
    private static int nextPort = 20000 + (System.Environment.ProcessId % 100) * 100;

    public static int FreePort()
    {
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            var port = Interlocked.Increment(ref nextPort);
            if (port >= 32000)
            {
                Interlocked.Exchange(ref nextPort, 20000);
                continue;
            }

            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return port;
            }
            catch (SocketException)
            {
            }
        }

        throw new InvalidOperationException("No free port below the ephemeral range.");
    }
}
