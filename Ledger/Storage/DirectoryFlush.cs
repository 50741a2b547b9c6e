using System.Runtime.InteropServices;
using System.Text;

namespace Health.Ledger.Storage;

/// <summary>
/// Flushes a directory's entries to disk, so that a file renamed into it is still there after a
/// power loss. .NET opens no directory handles, so on Linux this calls the C library's open and
/// fsync, found among the exports of the running program (as DotNext does for its snapshots),
/// which needs no particular file name for the C library.
/// </summary>
internal static unsafe class DirectoryFlush
{
    private const int ReadOnly = 0, Directory = 0x10000;

    /// <summary>Flushes <paramref name="directory"/> (on Linux; elsewhere the rename is left to the file system).</summary>
    public static void ToDisk(string directory)
    {
        if (!OperatingSystem.IsLinux())
            return;
        var open = (delegate* unmanaged<byte*, int, int>)Export("open");
        var fsync = (delegate* unmanaged<int, int>)Export("fsync");
        var close = (delegate* unmanaged<int, int>)Export("close");
        var path = Encoding.UTF8.GetBytes(directory + '\0');
        int descriptor;
        fixed (byte* name = path)
            descriptor = open(name, ReadOnly | Directory);
        if (descriptor < 0)
            throw new IOException($"The directory {directory} could not be opened to flush it (errno {Marshal.GetLastSystemError()}).");
        try
        {
            if (fsync(descriptor) != 0)
                throw new IOException($"The directory {directory} could not be flushed to disk (errno {Marshal.GetLastSystemError()}).");
        }
        finally
        {
            _ = close(descriptor);
        }
    }

    private static nint Export(string name)
        => NativeLibrary.TryGetExport(NativeLibrary.GetMainProgramHandle(), name, out var address)
            ? address
            : throw new IOException($"The C library's {name} was not found; snapshots cannot be flushed to disk.");
}
