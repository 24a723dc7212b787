import Foundation
import Mirrors

/// Downloads the masks a Labelbox export names by URL, with the user's API key as a bearer
/// token, through the mirrors' `Downloader` (parallel transfers, retries, the data folder's
/// content-addressed store). The key goes only to Labelbox (`https://labelbox.com` and its
/// subdomains) or to a server the user names; it is never written anywhere, and neither are
/// the URLs (they expire, and a partial transfer is named by a hash of its URL).
public struct LabelboxMaskFetcher: Sendable {
    public var downloader: Downloader
    public var apiKey: String
    /// URL prefixes besides Labelbox's that may receive the key (a test server, a proxy).
    public var trustedPrefixes: [String]

    public init(downloader: Downloader, apiKey: String, trustedPrefixes: [String] = []) {
        self.downloader = downloader
        self.apiKey = apiKey
        // A prefix ends at a path separator, so that `http://host` cannot also admit
        // `http://host.example.org/`; an empty one would admit everything.
        self.trustedPrefixes = trustedPrefixes.filter { !$0.isEmpty }.map { $0.hasSuffix("/") ? $0 : $0 + "/" }
    }

    /// The key from `LABELBOX_API_KEY` (nil when unset or empty, so that masks come from local
    /// files only) and an extra trusted server from `HRTEM_LABELBOX_URL`.
    public static func fromEnvironment(_ environment: [String: String], downloader: Downloader) -> LabelboxMaskFetcher? {
        guard let key = environment["LABELBOX_API_KEY"], !key.isEmpty else { return nil }
        return LabelboxMaskFetcher(downloader: downloader, apiKey: key,
                                   trustedPrefixes: [environment["HRTEM_LABELBOX_URL"] ?? ""])
    }

    static func isRemote(_ url: String) -> Bool {
        guard let scheme = URL(string: url)?.scheme?.lowercased() else { return false }
        return scheme == "http" || scheme == "https"
    }

    /// Whether the API key may be sent with a request for `url`.
    public func mayReceiveKey(_ url: String) -> Bool {
        if trustedPrefixes.contains(where: { url.hasPrefix($0) }) { return true }
        guard let parsed = URL(string: url), parsed.scheme?.lowercased() == "https",
              parsed.user == nil, let host = parsed.host?.lowercased() else { return false }
        return host == "labelbox.com" || host.hasSuffix(".labelbox.com")
    }

    var trustedDescription: String {
        (["https://labelbox.com and its subdomains"] + trustedPrefixes).joined(separator: ", ")
            + (trustedPrefixes.isEmpty ? " (HRTEM_LABELBOX_URL adds a server)" : "")
    }

    /// Fetches every mask; returns the stored file of each URL.
    /// - Throws: `LabelboxFetchError` for the first mask (in request order) that failed.
    func fetch(_ masks: [LabelboxImporter.RemoteMask], source: String) throws -> [String: URL] {
        guard !masks.isEmpty else { return [:] }
        let requests = masks.map {
            DownloadRequest(key: "\($0.reference) object \($0.objectID)", url: $0.url, bearerToken: apiKey)
        }
        var files = [String: URL]()
        for (mask, result) in zip(masks, downloader.download(requests)) {
            if case .failed(let error) = result.outcome {
                throw LabelboxFetchError(source: source, line: mask.line, dataRow: mask.reference, objectID: mask.objectID, error: error)
            }
            if let file = result.file { files[mask.url] = file.url }
        }
        return files
    }
}

/// A mask of a Labelbox export that could not be downloaded; the import stops before anything
/// is written.
public struct LabelboxFetchError: Error, CustomStringConvertible, Sendable {
    /// The export file and the 1-based line of the data row.
    public var source: String
    public var line: Int
    /// The data row's external id (else global key, else id).
    public var dataRow: String
    public var objectID: String
    /// What the downloader reported (with the HTTP status, attempts and offset).
    public var error: MirrorError

    /// The HTTP status when the server answered with one.
    public var httpStatus: Int? {
        if case .http(_, let status, _, _) = error { return status }
        return nil
    }

    /// Labelbox answers an expired mask URL, or a key that is missing or wrong, with 401, 403
    /// or 410.
    public var isExpiredOrRefused: Bool { [401, 403, 410].contains(httpStatus ?? 0) }

    public var description: String {
        let place = "\(source):\(line): data row '\(dataRow)', mask of object '\(objectID)'"
        if isExpiredOrRefused {
            return "\(place): Labelbox refused the download (HTTP \(httpStatus!)): the export's mask URLs have expired "
                + "or LABELBOX_API_KEY is not a valid key for this project; export the project again and import the new export. "
                + "Nothing was imported."
        }
        // The URL is left out: it is of no use once expired and is not the user's to keep.
        let why: String
        switch error {
        case let .http(_, status, attempts, _):
            why = "HTTP \(status) after \(attempts) attempt\(attempts == 1 ? "" : "s")"
        case let .network(_, message, attempts, _):
            why = "\(message) after \(attempts) attempt\(attempts == 1 ? "" : "s")"
        default:
            why = error.description
        }
        return "\(place): cannot download it: \(why). Nothing was imported."
    }
}
