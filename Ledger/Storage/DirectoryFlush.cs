using System.Runtime.InteropServices;

namespace Health.Ledger.Storage;

/// <summary>
/// Flushes a directory's entries to disk, so that a file renamed into it is still there after a
/// power loss. .NET opens no directory handles, so on Linux this calls open and fsync itself.
/// </summary>
internal static partial class DirectoryFlush
{
    private const int ReadOnly = 0, Directory = 0x10000;

    /// <summary>Flushes <paramref name="directory"/> (on Linux; elsewhere the rename is left to the file system).</summary>
    public static void ToDisk(string directory)
    {
        if (!OperatingSystem.IsLinux())
            return;
        var descriptor = Open(directory, ReadOnly | Directory);
        if (descriptor < 0)
            throw new IOException($"The directory {directory} could not be opened to flush it (errno {Marshal.GetLastPInvokeError()}).");
        try
        {
            if (Fsync(descriptor) != 0)
                throw new IOException($"The directory {directory} could not be flushed to disk (errno {Marshal.GetLastPInvokeError()}).");
        }
        finally
        {
            _ = Close(descriptor);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int descriptor);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int descriptor);
}
