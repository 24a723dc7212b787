import Foundation
import Micrograph

/// A file in the content-addressed store.
public struct StoredFile: Equatable, Sendable {
    /// Lower-case hex SHA-256 of the content.
    public var sha256: String
    public var size: Int64
    /// `<root>/store/<first two hex digits>/<sha256>`.
    public var url: URL
}

/// The content-addressed store of a data folder, and the folders a transfer passes through:
///
/// - `store/<aa>/<sha256>`: complete, verified files only (published by rename after fsync);
/// - `tmp/`: partial transfers (`<key hash>.part`), kept between runs so a transfer resumes;
/// - `quarantine/`: files whose content did not match what was expected, for inspection.
///
/// All three live under one root so that publishing is a rename on one file system.
public struct ContentStore: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root.standardizedFileURL }

    public var storeFolder: URL { root.appendingPathComponent("store") }
    public var temporaryFolder: URL { root.appendingPathComponent("tmp") }
    public var quarantineFolder: URL { root.appendingPathComponent("quarantine") }

    /// Where a file with this SHA-256 lives (whether or not it is there).
    public func location(sha256: String) -> URL {
        let hex = sha256.lowercased()
        return storeFolder.appendingPathComponent(String(hex.prefix(2))).appendingPathComponent(hex)
    }

    /// The stored file with this digest, if present (and of `size` bytes when given).
    public func lookup(sha256: String, size: Int64? = nil) -> StoredFile? {
        guard isSHA256Hex(sha256) else { return nil }
        let url = location(sha256: sha256)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
              let actual = (attributes[.size] as? NSNumber)?.int64Value else { return nil }
        if let size, size != actual { return nil }
        return StoredFile(sha256: sha256.lowercased(), size: actual, url: url)
    }

    /// Re-hashes a stored file; true when its content still has its name's digest.
    public func verify(_ file: StoredFile) throws -> Bool {
        try sha256Hex(fileAt: file.url) == file.sha256
    }

    /// Publishes a complete, verified temporary file: fsync, then rename to its content address
    /// (and fsync the folder so the rename survives a crash). When the content is already stored
    /// the temporary file is simply removed.
    /// - Throws: `MirrorError.io` naming the file.
    public func publish(temporary: URL, sha256: String, size: Int64) throws -> StoredFile {
        let target = location(sha256: sha256)
        let folder = target.deletingLastPathComponent()
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw MirrorError.io(folder.path, "cannot create folder: \(error.localizedDescription)")
        }
        if let existing = lookup(sha256: sha256, size: size) {
            try? FileManager.default.removeItem(at: temporary)
            return existing
        }
        try fsyncPath(temporary)
        if rename(temporary.path, target.path) != 0 {
            throw MirrorError.io(target.path, "rename from \(temporary.path) failed: \(String(cString: strerror(errno)))")
        }
        try? fsyncPath(folder)
        return StoredFile(sha256: sha256, size: size, url: target)
    }

    /// Adds an existing local file to the store by copying it through a temporary file (used for
    /// files that did not come over the network, e.g. a fetched metadata table handed to import).
    public func add(fileAt source: URL) throws -> StoredFile {
        try FileManager.default.createDirectory(at: temporaryFolder, withIntermediateDirectories: true)
        let temporary = temporaryFolder.appendingPathComponent("add-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        do { try FileManager.default.copyItem(at: source, to: temporary) } catch {
            throw MirrorError.io(source.path, "cannot copy into the store: \(error.localizedDescription)")
        }
        let digest = try sha256Hex(fileAt: temporary)
        let size = (try FileManager.default.attributesOfItem(atPath: temporary.path)[.size] as? NSNumber)?.int64Value ?? 0
        return try publish(temporary: temporary, sha256: digest, size: size)
    }

    /// Moves a file that failed verification out of the way, keeping it for inspection, and
    /// writes the reason beside it. Returns where it went.
    public func quarantine(_ file: URL, key: String, reason: String) throws -> URL {
        try FileManager.default.createDirectory(at: quarantineFolder, withIntermediateDirectories: true)
        let stamp = Int(Date().timeIntervalSince1970)
        let safeName = key.split(separator: "/").last.map(String.init)?
            .replacingOccurrences(of: " ", with: "_") ?? "file"
        let target = quarantineFolder.appendingPathComponent("\(stamp)-\(UUID().uuidString.prefix(8))-\(safeName)")
        if rename(file.path, target.path) != 0 {
            throw MirrorError.io(file.path, "cannot move to quarantine: \(String(cString: strerror(errno)))")
        }
        try? writeFileAtomically(Data("\(key)\n\(reason)\n".utf8), to: target.appendingPathExtension("reason.txt"))
        return target
    }
}

func isSHA256Hex(_ text: String) -> Bool { text.count == 64 && text.allSatisfy(\.isHexDigit) }

func fsyncPath(_ url: URL) throws {
    let fd = open(url.path, O_RDONLY)
    guard fd >= 0 else { throw MirrorError.io(url.path, "cannot open to sync: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    if fsync(fd) != 0 { throw MirrorError.io(url.path, "fsync failed: \(String(cString: strerror(errno)))") }
}
