import Foundation

/// Writes a file so that it is either absent or complete under its final name: the bytes go to
/// a temporary name in the same folder, are flushed to disk, then renamed over the target.
/// - Throws: `FormatError` naming the target when any step fails; the temporary file is removed.
public func writeFileAtomically(_ data: Data, to url: URL) throws {
    try writeFileAtomically(to: url) { handle in try handle.write(contentsOf: data) }
}

/// As `writeFileAtomically(_:to:)`, streaming: `body` writes through the handle it is given.
public func writeFileAtomically(to url: URL, _ body: (FileHandle) throws -> Void) throws {
    let folder = url.deletingLastPathComponent()
    let fileManager = FileManager.default
    do {
        try fileManager.createDirectory(at: folder, withIntermediateDirectories: true)
    } catch {
        throw FormatError(file: url.path, "cannot create folder \(folder.path): \(error.localizedDescription)")
    }
    let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt64.random(in: 0...UInt64.max))")
    guard fileManager.createFile(atPath: temporary.path, contents: nil),
          let handle = FileHandle(forWritingAtPath: temporary.path) else {
        throw FormatError(file: url.path, "cannot create temporary file in \(folder.path)")
    }
    do {
        try body(handle)
        try handle.synchronize()
        try handle.close()
        if rename(temporary.path, url.path) != 0 {
            throw FormatError(file: url.path, "rename failed: \(String(cString: strerror(errno)))")
        }
    } catch {
        try? handle.close()
        try? fileManager.removeItem(at: temporary)
        if let formatError = error as? FormatError { throw formatError }
        throw FormatError(file: url.path, "write failed: \(error.localizedDescription)")
    }
}

/// As `writeFileAtomically(_:to:)`, for libraries that open files by path themselves
/// (libtiff): `body` writes the file at the temporary path it is given, which is then
/// flushed to disk and renamed over `url`. On any error the temporary file is removed.
public func writeFileAtomically(to url: URL, usingTemporaryPath body: (URL) throws -> Void) throws {
    let folder = url.deletingLastPathComponent()
    do {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    } catch {
        throw FormatError(file: url.path, "cannot create folder \(folder.path): \(error.localizedDescription)")
    }
    let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt64.random(in: 0...UInt64.max))")
    do {
        try body(temporary)
        let fd = open(temporary.path, O_RDONLY)
        guard fd >= 0 else { throw FormatError(file: url.path, "temporary file vanished: \(String(cString: strerror(errno)))") }
        let synced = fsync(fd)
        close(fd)
        guard synced == 0 else { throw FormatError(file: url.path, "fsync failed: \(String(cString: strerror(errno)))") }
        if rename(temporary.path, url.path) != 0 {
            throw FormatError(file: url.path, "rename failed: \(String(cString: strerror(errno)))")
        }
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        if let formatError = error as? FormatError { throw formatError }
        throw FormatError(file: url.path, "write failed: \(error.localizedDescription)")
    }
}
