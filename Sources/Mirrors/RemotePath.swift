import Foundation

/// A relative path on a mirror, checked so that it can never climb out of the mirror's base nor
/// name a place outside the data folder: `/`-separated, no empty, `.` or `..` segment, not
/// absolute, no control characters.
///
/// Folder names of the study contain spaces and `/` (`2021_08_26 5nm Au .../Ultrathin Carbon`):
/// a `/` always separates segments, and each segment is percent-encoded on its own.
public struct RemotePath: Hashable, Sendable, CustomStringConvertible {
    public let segments: [String]

    /// - Throws: `MirrorError.unsafePath` naming the path and the offending segment.
    public init(_ path: String) throws {
        if path.hasPrefix("/") || path.hasPrefix("\\") {
            throw MirrorError.unsafePath(path, "absolute paths are not allowed")
        }
        if path.range(of: #"^[A-Za-z]:[\\/]"#, options: .regularExpression) != nil {
            throw MirrorError.unsafePath(path, "absolute (drive) paths are not allowed")
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for part in parts {
            if part.isEmpty { throw MirrorError.unsafePath(path, "empty segment") }
            if part == "." || part == ".." { throw MirrorError.unsafePath(path, "segment '\(part)' is not allowed") }
            if part.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                throw MirrorError.unsafePath(path, "control character in segment")
            }
            if part.contains("\\") { throw MirrorError.unsafePath(path, "backslash in segment") }
        }
        segments = parts
    }

    public init(segments: [String]) throws { try self.init(segments.joined(separator: "/")) }

    public var description: String { segments.joined(separator: "/") }
    public var lastSegment: String { segments[segments.count - 1] }

    /// The path percent-encoded segment by segment (RFC 3986 unreserved characters kept).
    public var percentEncoded: String { segments.map(percentEncodeSegment).joined(separator: "/") }

    public func appending(_ other: RemotePath) -> RemotePath {
        // Both sides were validated, so the concatenation is valid too.
        try! RemotePath(segments: segments + other.segments)
    }
}

private let unreservedCharacters: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8))

/// Percent-encodes every byte of `segment` except RFC 3986 unreserved characters (so `/`, space,
/// `%`, `?` and `#` are all encoded).
public func percentEncodeSegment(_ segment: String) -> String {
    var out = ""
    for byte in segment.utf8 {
        if unreservedCharacters.contains(byte) {
            out.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            out += String(format: "%%%02X", byte)
        }
    }
    return out
}

/// Joins a base URL (with or without a trailing `/`) and an encoded relative path.
func joinURL(_ base: String, _ encodedPath: String) -> String {
    base.hasSuffix("/") ? base + encodedPath : base + "/" + encodedPath
}

/// Resolves `child` inside `root` and refuses anything that would land outside it, following
/// the symbolic links of the part of the path that already exists.
/// - Throws: `MirrorError.unsafePath` when the result is not strictly inside `root`.
public func safeLocation(of child: RemotePath, inside root: URL) throws -> URL {
    var url = root
    for segment in child.segments { url.appendPathComponent(segment) }
    let resolvedRoot = realPath(root.path) ?? root.standardizedFileURL.path
    // Resolve the longest existing prefix, then append the segments that do not exist yet.
    var existing = url.path
    var missing: [String] = []
    var resolved: String?
    while true {
        if let real = realPath(existing) { resolved = real; break }
        let parent = (existing as NSString).deletingLastPathComponent
        if parent == existing || parent.isEmpty { break }
        missing.insert((existing as NSString).lastPathComponent, at: 0)
        existing = parent
    }
    let full = ([resolved ?? existing] + missing).joined(separator: "/")
    let prefix = resolvedRoot.hasSuffix("/") ? resolvedRoot : resolvedRoot + "/"
    guard full.hasPrefix(prefix) else {
        throw MirrorError.unsafePath(child.description, "resolves outside \(root.path)")
    }
    return url
}

private func realPath(_ path: String) -> String? {
    guard let pointer = realpath(path, nil) else { return nil }
    defer { free(pointer) }
    return String(cString: pointer)
}
