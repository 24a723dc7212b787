import Catalog
import Foundation
import Hummingbird
import Micrograph

/// `hrtem serve`: the catalog, its frames, datasets, models and experiments in a browser.
///
/// Safety rules, enforced here and by `RequestGuard`:
/// - it binds to loopback unless told otherwise;
/// - it changes nothing unless started with `allowWrites` (other methods than GET/HEAD are
///   refused with 403);
/// - no request names a file: frames are addressed by catalog id, datasets by version id, models
///   by model id; the files read are the ones the catalog recorded, and cached pictures are
///   named by the hashes and integers the server formats itself;
/// - every query goes through the query compiler (values bound as SQL parameters).
public struct CatalogServer: Sendable {
    public struct Settings: Sendable {
        public var host = "127.0.0.1"
        public var port = 8080
        public var allowWrites = false
        /// Frames per page of the catalog grid.
        public var pageSize = 100
        /// Make thumbnails of every ingested frame in the background from the start.
        public var backgroundThumbnails = true

        public init(host: String = "127.0.0.1", port: Int = 8080, allowWrites: Bool = false) {
            self.host = host
            self.port = port
            self.allowWrites = allowWrites
        }
    }

    public let folder: DataFolder
    public let settings: Settings
    let store: CatalogStore
    let worker: ImageWorker
    let pages: Pages

    /// Opens the data folder's catalog; fails when there is none (a server never creates one).
    public init(folder: DataFolder, settings: Settings) throws {
        guard FileManager.default.fileExists(atPath: folder.catalogFile.path) else {
            throw FormatError(file: folder.catalogFile.path,
                              "no catalog here; create one with `hrtem import-metadata`, `hrtem ingest` or `hrtem synth`, or name another with --data")
        }
        self.folder = folder
        self.settings = settings
        store = try CatalogStore(folder: folder)
        worker = ImageWorker(images: FrameImages(dataFolder: folder), store: store)
        pages = Pages(folder: folder, store: store, worker: worker, settings: settings)
    }

    /// Serves until the process receives SIGINT or SIGTERM. `onListening` gets the bound port
    /// (the one the system chose when `settings.port` is 0).
    public func run(onListening: @escaping @Sendable (Int) -> Void) async throws {
        if settings.backgroundThumbnails { worker.startThumbnails() }
        // The first page anyone opens is the whole catalog: select it and count its facets now
        // (about a second on 100,000 frames) rather than on that first request.
        let pages = self.pages
        Task.detached(priority: .utility) { pages.warm() }
        let router = Router()
        router.addMiddleware { RequestGuard(allowWrites: settings.allowWrites, bind: settings.host) }
        pages.register(on: router)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "hrtem"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? settings.port) })
        try await app.runService()
    }
}

/// Refuses, before any handler runs, what no page of this server needs: paths with `..`,
/// backslashes, NUL or percent-encoded separators and dots (whatever they decode to), over-long
/// URIs, queries and headers, request bodies on a read-only server, and methods other than
/// GET/HEAD unless writes are allowed.
struct RequestGuard<Context: RequestContext>: RouterMiddleware {
    static var maximumURILength: Int { 4096 }
    static var maximumHeaderBytes: Int { 16 * 1024 }
    static var maximumBodyBytes: Int { 64 * 1024 }

    let allowWrites: Bool
    /// The Host header values accepted; nil accepts any (a server bound beyond loopback was
    /// meant to be reached by other names).
    let allowedHosts: Set<String>?

    init(allowWrites: Bool, bind: String) {
        self.allowWrites = allowWrites
        let loopback = bind == "localhost" || bind == "::1" || bind.hasPrefix("127.")
        // A web page elsewhere can point a name it controls at 127.0.0.1 (DNS rebinding) and
        // read what a loopback server answers; such a request carries that name as its Host.
        allowedHosts = loopback ? ["localhost", "127.0.0.1", "[::1]", bind.contains(":") ? "[\(bind)]" : bind] : nil
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let uri = request.uri.description
        guard uri.utf8.count <= Self.maximumURILength else {
            throw HTTPError(.uriTooLong, message: "the request URI is \(uri.utf8.count) bytes; at most \(Self.maximumURILength)")
        }
        let headerBytes = request.headers.reduce(0) { $0 + $1.name.rawName.utf8.count + $1.value.utf8.count + 4 }
        guard headerBytes <= Self.maximumHeaderBytes else {
            throw HTTPError(.requestHeaderFieldsTooLarge, message: "the request headers are \(headerBytes) bytes; at most \(Self.maximumHeaderBytes)")
        }
        if let allowedHosts {
            let host = request.head.authority ?? ""
            let name = host.hasPrefix("[") ? String(host.prefix { $0 != "]" }) + "]"
                                           : String(host.prefix { $0 != ":" })
            guard allowedHosts.contains(name.lowercased()) else {
                throw HTTPError(.forbidden, message: "Host '\(host.prefix(100))' is not this loopback server's name (use 127.0.0.1 or localhost)")
            }
        }
        if let problem = Self.pathProblem(request.uri.path) {
            throw HTTPError(.badRequest, message: "path not allowed: \(problem)")
        }
        switch request.method {
        case .get, .head:
            break
        case .post where allowWrites:
            if let length = request.headers[.contentLength].flatMap(Int.init), length > Self.maximumBodyBytes {
                throw HTTPError(.contentTooLarge, message: "the request body is \(length) bytes; at most \(Self.maximumBodyBytes)")
            }
        default:
            throw HTTPError(.forbidden, message: allowWrites
                ? "method \(request.method.rawValue) is not used by this server"
                : "this server is read-only; start it with --allow-writes to create recipes and build datasets")
        }
        return try await next(request, context)
    }

    /// Why a raw request path is refused, or nil. Checked on the path as sent (before any
    /// decoding), so encoded and double-encoded forms are caught as well as plain ones.
    static func pathProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "it does not start with /" }
        if path.hasPrefix("//") { return "it starts with //" }
        if path.contains("\\") { return "it contains a backslash" }
        if path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return "it contains a control character" }
        if path.contains("%") { return "it contains a percent-encoded character (no page name needs one)" }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        if segments.contains(where: { $0 == ".." || $0 == "." }) { return "it contains a '.' or '..' segment" }
        return nil
    }
}
