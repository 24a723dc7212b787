import Foundation

/// A mirror ready to use: its definition (after environment overrides), its token and its rate
/// limiter (one per mirror, shared by every request to it), and the downloader.
public final class MirrorClient: Sendable {
    public let definition: MirrorDefinition
    public let downloader: Downloader
    public let bearerToken: String?
    /// Present when the mirror limits anonymous clients and no token is set.
    public let rateLimiter: RateLimiter?

    public init(definition: MirrorDefinition, downloader: Downloader,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.definition = definition
        self.downloader = downloader
        bearerToken = definition.token(environment)
        if let perMinute = definition.requestsPerMinute, perMinute > 0, bearerToken == nil {
            rateLimiter = RateLimiter(requestsPerMinute: perMinute)
        } else {
            rateLimiter = nil
        }
    }

    /// A request for a file given by its path on the mirror (nersc and http layouts).
    public func request(for path: RemotePath, expected: ExpectedContent = ExpectedContent()) -> DownloadRequest {
        DownloadRequest(key: path.description, url: definition.url(for: path), expected: expected,
                        bearerToken: bearerToken, rateLimiter: rateLimiter)
    }

    /// A request for a file from a listing, verified against the listing's size and digest.
    public func request(for file: ListedFile, recordedSHA256: String? = nil) -> DownloadRequest {
        DownloadRequest(key: file.path.description, url: file.downloadURL,
                        expected: ExpectedContent(size: file.size, sha256: recordedSHA256, published: file.digest),
                        bearerToken: bearerToken, rateLimiter: rateLimiter)
    }

    /// The files of a Dryad dataset's latest version, with size and digest, following pages.
    /// - Throws: `MirrorError` when the mirror is not a Dryad mirror, a reply cannot be fetched,
    ///   or a listing is malformed or names an unsafe path.
    public func listFiles() throws -> [ListedFile] {
        guard definition.layout == .dryad, let doi = definition.doi else {
            throw MirrorError.badDefinition(definition.name, "only dryad mirrors publish a file listing")
        }
        let datasetURL = DryadAPI.datasetURL(api: definition.baseURL, doi: doi)
        let dataset = try downloader.fetchDocument(url: datasetURL, bearerToken: bearerToken, rateLimiter: rateLimiter)
        var pageURL: String? = try DryadAPI.filesURL(fromDataset: dataset, source: datasetURL)
        var files: [ListedFile] = []
        var seen = Set<String>()
        while let url = pageURL, !seen.contains(url) {
            seen.insert(url)
            let page = try DryadAPI.filesPage(
                downloader.fetchDocument(url: url, bearerToken: bearerToken, rateLimiter: rateLimiter), source: url)
            files += page.files
            pageURL = page.next
        }
        return files
    }

    /// The URL of the study's metadata table, for a mirror that publishes it.
    /// - Throws: `MirrorError.badDefinition` when this mirror has no `metadataPath`.
    public func metadataTableRequest() throws -> DownloadRequest {
        guard let path = definition.metadataPath else {
            throw MirrorError.badDefinition(definition.name, "publishes no metadata table (no \"metadataPath\")")
        }
        return request(for: try RemotePath(path))
    }
}
