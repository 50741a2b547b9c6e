using System.Security.Cryptography;

namespace Health.Ledger.Storage;

/// <summary>Secret files created once and shared safely between processes starting together.</summary>
public static class KeyFiles
{
    /// <summary>
    /// Returns the contents of <paramref name="path"/>, first writing <paramref name="create"/>'s
    /// output there (owner-readable only) when the file does not exist. The file appears whole or
    /// not at all, and when several processes race, all of them read the winner's key.
    /// </summary>
    public static string ReadOrCreate(string path, Func<string> create)
    {
        if (File.Exists(path))
            return File.ReadAllText(path);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temporary = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new StreamWriter(temporary, options))
            file.Write(create());
        try
        {
            File.Move(temporary, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
            File.Delete(temporary);
        }

        return File.ReadAllText(path);
    }

    /// <summary>An ECDSA P-256 key kept as a PKCS#8 PEM file at <paramref name="path"/>, made on first use.</summary>
    public static ECDsa ReadOrCreateEcdsa(string path)
    {
        var key = ECDsa.Create();
        key.ImportFromPem(ReadOrCreate(path, static () =>
        {
            using var fresh = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            return fresh.ExportPkcs8PrivateKeyPem();
        }));
        return key;
    }
}
