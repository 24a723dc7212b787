import Foundation

/// A digest a mirror publishes for a file.
public struct PublishedDigest: Equatable, Sendable, CustomStringConvertible {
    public enum Algorithm: String, Sendable { case sha256 = "sha-256", md5 = "md5" }
    public var algorithm: Algorithm
    /// Lower-case hex.
    public var hex: String

    public init(algorithm: Algorithm, hex: String) {
        self.algorithm = algorithm
        self.hex = hex.lowercased()
    }

    /// Accepts Dryad's spellings (`sha-256`, `sha256`, `SHA256`, `md5`, `MD5`); nil otherwise.
    public init?(type: String, hex: String) {
        let normalized = type.lowercased().replacingOccurrences(of: "-", with: "").replacingOccurrences(of: "_", with: "")
        let algorithm: Algorithm
        switch normalized {
        case "sha256": algorithm = .sha256
        case "md5": algorithm = .md5
        default: return nil
        }
        let length = algorithm == .sha256 ? 64 : 32
        guard hex.count == length, hex.allSatisfy(\.isHexDigit) else { return nil }
        self.init(algorithm: algorithm, hex: hex)
    }

    public var description: String { "\(algorithm.rawValue):\(hex)" }
}

/// One file of a mirror listing (Dryad's file API).
public struct ListedFile: Equatable, Sendable {
    /// The file's path in the dataset, validated (no `..`, not absolute).
    public var path: RemotePath
    public var size: Int64?
    public var digest: PublishedDigest?
    /// Absolute download URL.
    public var downloadURL: String
}

/// One page of Dryad's `versions/<id>/files` reply.
public struct DryadFilesPage: Sendable {
    public var files: [ListedFile]
    /// Absolute URL of the next page, when the listing is paginated.
    public var next: String?
}

/// Parsers for the Dryad API v2 (HAL+JSON) replies, tolerant of missing optional fields:
///
/// - `GET <api>/datasets/<url-encoded DOI>` -> `{"_links": {"stash:version": {"href": "/api/v2/versions/N"}}, ...}`
/// - `GET <host>/api/v2/versions/N/files` -> `{"_embedded": {"stash:files": [{"path": "...",
///   "size": 123, "digest": "...", "digestType": "sha-256"|"md5", "_links": {"stash:download":
///   {"href": "/api/v2/files/M/download"}}}, ...]}, "_links": {"next": {"href": ...}}}`
///
/// Relative hrefs are resolved against the URL the reply came from.
public enum DryadAPI {
    /// The dataset URL for a DOI: `<api>/datasets/doi%3A10.7941%2FD1SP93`.
    public static func datasetURL(api: String, doi: String) -> String {
        joinURL(api, "datasets/" + percentEncodeSegment(doi))
    }

    /// The files URL of the dataset's latest version.
    /// - Throws: `MirrorError.badListing` when the reply has no version link.
    public static func filesURL(fromDataset data: Data, source: String) throws -> String {
        let object = try jsonObject(data, source: source)
        let links = object["_links"] as? [String: Any]
        guard let version = (links?["stash:version"] as? [String: Any])?["href"] as? String else {
            throw MirrorError.badListing(source, "no _links.stash:version.href in the dataset reply")
        }
        return resolve(version, against: source).map { joinURL($0, "files") }
            ?? joinURL(version, "files")
    }

    /// - Throws: `MirrorError.badListing` naming the entry (index) that is malformed, or
    ///   `MirrorError.unsafePath` for a path that could escape the data folder.
    public static func filesPage(_ data: Data, source: String) throws -> DryadFilesPage {
        let object = try jsonObject(data, source: source)
        let embedded = object["_embedded"] as? [String: Any]
        guard let entries = (embedded?["stash:files"] ?? object["files"]) as? [Any] else {
            throw MirrorError.badListing(source, "no _embedded.stash:files array in the files reply")
        }
        var files: [ListedFile] = []
        for (index, entry) in entries.enumerated() {
            guard let item = entry as? [String: Any] else {
                throw MirrorError.badListing(source, "stash:files[\(index)] is not an object")
            }
            guard let name = (item["path"] ?? item["filename"]) as? String else {
                throw MirrorError.badListing(source, "stash:files[\(index)] has no path")
            }
            let path = try RemotePath(name)
            let size = (item["size"] as? NSNumber)?.int64Value
            var digest: PublishedDigest?
            if let hex = item["digest"] as? String, let type = item["digestType"] as? String {
                digest = PublishedDigest(type: type, hex: hex)
                if digest == nil {
                    throw MirrorError.badListing(source, "stash:files[\(index)] (\(name)): unusable digest '\(type)' '\(hex)'")
                }
            }
            let links = item["_links"] as? [String: Any]
            guard let href = (links?["stash:download"] as? [String: Any])?["href"] as? String,
                  let download = resolve(href, against: source) else {
                throw MirrorError.badListing(source, "stash:files[\(index)] (\(name)) has no _links.stash:download.href")
            }
            files.append(ListedFile(path: path, size: size, digest: digest, downloadURL: download))
        }
        let links = object["_links"] as? [String: Any]
        let next = ((links?["next"] as? [String: Any])?["href"] as? String).flatMap { resolve($0, against: source) }
        return DryadFilesPage(files: files, next: next)
    }

    private static func jsonObject(_ data: Data, source: String) throws -> [String: Any] {
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
            throw MirrorError.badListing(source, "not JSON: \(error.localizedDescription)")
        }
        guard let object = parsed as? [String: Any] else {
            throw MirrorError.badListing(source, "expected a JSON object at the top level")
        }
        return object
    }

    /// An href resolved against the URL of the reply it came from (absolute hrefs kept).
    static func resolve(_ href: String, against source: String) -> String? {
        if href.hasPrefix("http://") || href.hasPrefix("https://") || href.hasPrefix("file://") { return href }
        guard let base = URL(string: source), let url = URL(string: href, relativeTo: base) else { return nil }
        return url.absoluteString
    }
}
