using System.Runtime.InteropServices;
using System.Text;

namespace Health.Ledger.Storage;

/// <summary>
/// Flushes a file's contents, or a directory's entries, to disk: a file is written out before it
/// is renamed into place, and the directory after, so that it is there, whole, after a power loss.
/// .NET opens no directory handles, so on Linux the directory is flushed through the C library's
/// open and fsync, found among the exports of the running program (as DotNext does for its
/// snapshots), which needs no particular file name for the C library.
/// </summary>
internal static unsafe class DiskFlush
{
    private const int OpenReadOnly = 0, OpenDirectory = 0x10000;

    /// <summary>
    /// Flushes the contents of <paramref name="file"/>, written before, even while another part of
    /// this process (SQLite) has it open and writes it: Linux writes out every dirty page of the
    /// file, whichever descriptor wrote it.
    /// </summary>
    public static void File(string file)
    {
        using var written = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        written.Flush(flushToDisk: true);
    }

    /// <summary>Flushes <paramref name="file"/> like <see cref="File"/>; nothing if there is no such file.</summary>
    public static void FileInUse(string file)
    {
        try
        {
            File(file);
        }
        catch (FileNotFoundException)
        {
        }
    }

    /// <summary>Flushes <paramref name="directory"/> (on Linux; elsewhere the rename is left to the file system).</summary>
    public static void Directory(string directory)
    {
        if (!OperatingSystem.IsLinux())
            return;
        var open = (delegate* unmanaged<byte*, int, int>)Export("open");
        var fsync = (delegate* unmanaged<int, int>)Export("fsync");
        var close = (delegate* unmanaged<int, int>)Export("close");
        var path = Encoding.UTF8.GetBytes(directory + '\0');
        int descriptor;
        fixed (byte* name = path)
            descriptor = open(name, OpenReadOnly | OpenDirectory);
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
