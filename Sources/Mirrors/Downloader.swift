import CCrypto
import CCurl
import Foundation
import Micrograph

/// What is known about a file before it is fetched; the downloader verifies against the
/// strongest of these: the mirror's published digest, else the SHA-256 recorded at an earlier
/// download, else the size. With none, the file is accepted and its SHA-256 becomes the record.
public struct ExpectedContent: Equatable, Sendable {
    public var size: Int64?
    /// SHA-256 recorded in the catalog at the first download (lower-case hex).
    public var sha256: String?
    /// The digest the mirror publishes (Dryad).
    public var published: PublishedDigest?

    public init(size: Int64? = nil, sha256: String? = nil, published: PublishedDigest? = nil) {
        self.size = size
        self.sha256 = sha256?.lowercased()
        self.published = published
    }

    /// The SHA-256 the content must have, when one is known (used to find it in the store).
    public var knownSHA256: String? {
        if let published, published.algorithm == .sha256 { return published.hex }
        return sha256
    }
}

/// One file to fetch.
public struct DownloadRequest: Sendable {
    /// What people read in progress lines and errors (e.g. `<Folder>/<File name>`).
    public var key: String
    /// Absolute URL (already percent-encoded).
    public var url: String
    public var expected: ExpectedContent
    /// Sent as `Authorization: Bearer <token>` when set.
    public var bearerToken: String?
    /// Shared by every request to a mirror that limits its request rate.
    public var rateLimiter: RateLimiter?

    public init(key: String, url: String, expected: ExpectedContent = ExpectedContent(),
                bearerToken: String? = nil, rateLimiter: RateLimiter? = nil) {
        self.key = key
        self.url = url
        self.expected = expected
        self.bearerToken = bearerToken
        self.rateLimiter = rateLimiter
    }
}

public struct DownloaderConfiguration: Sendable {
    /// Transfers in flight at once.
    public var jobs: Int = 4
    /// Seconds allowed to establish a connection.
    public var connectTimeout: Double = 30
    /// A transfer slower than `lowSpeedLimit` bytes/s for `lowSpeedTime` seconds is abandoned
    /// (and retried, resuming where it stopped).
    public var lowSpeedLimit: Int = 1024
    public var lowSpeedTime: Int = 60
    public var retry = RetryPolicy()
    public var userAgent = "hrtem/\(hrtemVersion)"
    /// libcurl's receive buffer: the body reaches the disk in pieces of at most this size.
    public var bufferSize: Int = 512 << 10
    /// Re-hash files already in the store before skipping them (slow; off by default because
    /// files enter the store only after verification).
    public var rehashStoredFiles = false

    public init() {}
}

public enum DownloadOutcome: Sendable, Equatable {
    /// Transferred (at least partly) in this run and verified.
    case fetched
    /// Already in the store, verified earlier.
    case skipped
    case failed(MirrorError)
}

public struct DownloadResult: Sendable {
    public var request: DownloadRequest
    public var outcome: DownloadOutcome
    /// The verified file in the store (nil when failed).
    public var file: StoredFile?
    public var attempts: Int
    /// Body bytes received over the network in this run (all attempts together).
    public var bytesTransferred: Int64
    /// Bytes of a partial file left by an earlier run that this run kept (resume).
    public var resumedFrom: Int64
    /// How the content was verified (`sha-256 (mirror)`, `md5 (mirror)`, `sha-256 (recorded)`,
    /// `size`, or `none: first download`).
    public var verifiedBy: String
    public var seconds: Double
}

/// Live totals that a progress display polls (thread-safe).
public final class DownloadProgress: Sendable {
    private struct Totals: Sendable {
        var bytes: Int64 = 0
        var filesDone = 0
        var announcedBytes: Int64 = 0
        var announcedFiles = 0
        var active: [String] = []
    }
    private let totals = Locked(Totals())

    public init() {}

    public var bytesReceived: Int64 { totals.withLock { $0.bytes } }
    public var filesDone: Int { totals.withLock { $0.filesDone } }
    public var activeKeys: [String] { totals.withLock { $0.active } }

    func add(bytes: Int64) { totals.withLock { $0.bytes += bytes } }
    /// A transfer's body length became known (its `Content-Length`).
    func announce(bytes: Int64) { totals.withLock { $0.announcedBytes += bytes; $0.announcedFiles += 1 } }
    /// Body bytes announced so far and by how many transfers (to estimate the total when the
    /// mirror publishes no sizes).
    public var announced: (bytes: Int64, files: Int) { totals.withLock { ($0.announcedBytes, $0.announcedFiles) } }
    func started(_ key: String) { totals.withLock { $0.active.append(key) } }
    func finished(_ key: String) {
        totals.withLock { totals in
            totals.filesDone += 1
            if let index = totals.active.firstIndex(of: key) { totals.active.remove(at: index) }
        }
    }
}

private let curlGlobalInit: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

/// Fetches files over HTTP(S) with libcurl into a `ContentStore`: bounded parallel transfers,
/// retries with exponential back-off and jitter (honouring `Retry-After`), resume with `Range`
/// (restarting from zero when the server ignores it), verification, and publication by atomic
/// rename. A file is visible under its final name only when complete and verified.
///
/// Memory stays bounded whatever the file sizes: each transfer holds one libcurl buffer
/// (`bufferSize`) and streams the body to its partial file while hashing it.
/// Proxies come from the environment (`http_proxy`, `https_proxy`, `no_proxy`), as libcurl does.
public final class Downloader: Sendable {
    public let store: ContentStore
    public let configuration: DownloaderConfiguration
    public let progress = DownloadProgress()

    public init(store: ContentStore, configuration: DownloaderConfiguration = DownloaderConfiguration()) {
        self.store = store
        self.configuration = configuration
    }

    /// Fetches every request, `configuration.jobs` at a time; results in request order.
    /// `onFinish` is called (from worker threads, one at a time) as each file finishes.
    public func download(_ requests: [DownloadRequest],
                         onFinish: (@Sendable (DownloadResult) -> Void)? = nil) -> [DownloadResult] {
        _ = curlGlobalInit
        guard !requests.isEmpty else { return [] }
        // The same URL twice would race for one partial file: fetch it once, answer both.
        var firstIndex: [String: Int] = [:]
        var unique: [DownloadRequest] = []
        var slot: [Int] = []
        for request in requests {
            if let index = firstIndex[request.url] { slot.append(index); continue }
            firstIndex[request.url] = unique.count
            slot.append(unique.count)
            unique.append(request)
        }
        if unique.count < requests.count {
            let results = download(unique, onFinish: onFinish)
            return requests.indices.map { i in
                var result = results[slot[i]]
                result.request = requests[i]
                return result
            }
        }
        let shared = WorkList(count: requests.count)
        let workers = max(1, min(configuration.jobs, requests.count))
        let group = DispatchGroup()
        for _ in 0..<workers {
            group.enter()
            let thread = Thread { [self] in
                let worker = TransferWorker(downloader: self)
                while true {
                    guard let index = shared.take() else { break }
                    progress.started(requests[index].key)
                    let result = worker.fetch(requests[index])
                    progress.finished(requests[index].key)
                    shared.finish(index, result, onFinish)
                }
                worker.close()
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        return shared.results.map { $0! }
    }

    /// Fetches a small document (a listing, a JSON reply) into memory, with the same retries.
    /// - Throws: `MirrorError` when it cannot be fetched or exceeds `limit` bytes.
    public func fetchDocument(url: String, bearerToken: String? = nil, rateLimiter: RateLimiter? = nil,
                              limit: Int = 64 << 20) throws -> Data {
        _ = curlGlobalInit
        let worker = TransferWorker(downloader: self)
        defer { worker.close() }
        return try worker.fetchDocument(url: url, bearerToken: bearerToken, rateLimiter: rateLimiter, limit: limit)
    }

    /// The partial file a request's transfer writes to (stable across runs, so a rerun resumes).
    public func partialLocation(for request: DownloadRequest) -> URL {
        store.temporaryFolder.appendingPathComponent(String(sha256Hex(Data(request.url.utf8)).prefix(40)) + ".part")
    }
}

/// The shared cursor and result slots of one `download` call.
private final class WorkList: Sendable {
    private struct State: Sendable {
        var next = 0
        var results: [DownloadResult?]
    }
    private let state: Locked<State>
    private let count: Int

    init(count: Int) {
        self.count = count
        state = Locked(State(results: Array(repeating: nil, count: count)))
    }

    var results: [DownloadResult?] { state.withLock { $0.results } }

    func take() -> Int? {
        state.withLock { state in
            guard state.next < count else { return nil }
            state.next += 1
            return state.next - 1
        }
    }

    /// Records a result and reports it, under the lock, so `onFinish` runs one call at a time.
    func finish(_ index: Int, _ result: DownloadResult, _ onFinish: (@Sendable (DownloadResult) -> Void)?) {
        state.withLock { state in
            state.results[index] = result
            onFinish?(result)
        }
    }
}

/// A digest context over OpenSSL's EVP interface (SHA-256 or MD5).
final class DigestContext {
    private let context: OpaquePointer
    init(md5: Bool) {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, md5 ? EVP_md5() : EVP_sha256(), nil)
    }
    deinit { EVP_MD_CTX_free(context) }
    func update(_ pointer: UnsafeRawPointer, _ count: Int) { EVP_DigestUpdate(context, pointer, count) }
    func finalizeHex() -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return hexString(Array(digest.prefix(Int(length))))
    }
}

/// State of one attempt, reached from libcurl's callbacks through their user-data pointer.
final class AttemptContext {
    enum BodyDecision { case write, discard, abort }
    var fd: Int32 = -1
    var sha256 = DigestContext(md5: false)
    var md5: DigestContext?
    var wantsMD5 = false
    /// Bytes already in the partial file when the attempt started.
    var offset: Int64 = 0
    var status = 0
    var retryAfter: String?
    var contentRangeStart: Int64?
    /// The complete length from `Content-Range: bytes */N` (a 416 reply names it).
    var contentRangeTotal: Int64?
    var contentLength: Int64?
    var decision: BodyDecision?
    var rangeMismatch = false
    var restartedFromZero = false
    var ioError: String?
    var received: Int64 = 0
    var memory: Data?
    var memoryLimit = 0
    var progress: DownloadProgress?

    func resetDigests() {
        sha256 = DigestContext(md5: false)
        md5 = wantsMD5 ? DigestContext(md5: true) : nil
    }

    func header(_ line: String) {
        let lower = line.lowercased()
        if lower.hasPrefix("http/") {
            // A new reply (after a redirect or a 100 Continue): forget the previous one's headers.
            let parts = line.split(separator: " ")
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            retryAfter = nil
            contentRangeStart = nil
            contentRangeTotal = nil
            contentLength = nil
        } else if lower.hasPrefix("retry-after:") {
            retryAfter = String(line.dropFirst("retry-after:".count)).trimmingCharacters(in: .whitespacesAndNewlines)
        } else if lower.hasPrefix("content-range:") {
            // "Content-Range: bytes 100-199/200"
            let value = lower.dropFirst("content-range:".count).trimmingCharacters(in: .whitespacesAndNewlines)
            if value.hasPrefix("bytes "), let dash = value.firstIndex(of: "-") {
                contentRangeStart = Int64(value[value.index(value.startIndex, offsetBy: 6)..<dash])
            }
            if let slash = value.lastIndex(of: "/") { contentRangeTotal = Int64(value[value.index(after: slash)...]) }
        } else if lower.hasPrefix("content-length:") {
            contentLength = Int64(lower.dropFirst("content-length:".count).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    private func decide() -> BodyDecision {
        let decision = decideBody()
        if decision == .write, memory == nil, let contentLength {
            progress?.announce(bytes: contentLength)
        }
        return decision
    }

    private func decideBody() -> BodyDecision {
        let success = status == 0 || (200..<300).contains(status)
        guard success else { return .discard }
        if memory != nil { return .write }
        if status == 206 {
            if (contentRangeStart ?? 0) != offset {
                rangeMismatch = true
                return .abort
            }
            return .write
        }
        if offset > 0 && status != 0 {
            // The server ignored the Range request and sends the whole body: start over.
            if ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0 {
                ioError = "cannot truncate partial file: \(String(cString: strerror(errno)))"
                return .abort
            }
            resetDigests()
            offset = 0
            restartedFromZero = true
        }
        return .write
    }

    func body(_ pointer: UnsafeMutablePointer<CChar>, _ count: Int) -> Int {
        if decision == nil { decision = decide() }
        switch decision! {
        case .discard: return count
        case .abort: return 0
        case .write: break
        }
        if memory != nil {
            if memory!.count + count > memoryLimit {
                ioError = "reply larger than \(memoryLimit) bytes"
                return 0
            }
            memory!.append(UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: count)
            received += Int64(count)
            return count
        }
        var written = 0
        while written < count {
            let n = write(fd, pointer + written, count - written)
            if n < 0 {
                if errno == EINTR { continue }
                ioError = "write to partial file failed: \(String(cString: strerror(errno)))"
                return 0
            }
            written += n
        }
        sha256.update(pointer, count)
        md5?.update(pointer, count)
        received += Int64(count)
        progress?.add(bytes: Int64(count))
        return count
    }
}

private let bodyCallback: hrtem_curl_data_callback = { data, size, count, user in
    guard let data, let user else { return 0 }
    return Unmanaged<AttemptContext>.fromOpaque(user).takeUnretainedValue().body(data, size * count)
}

private let headerCallback: hrtem_curl_data_callback = { data, size, count, user in
    guard let data, let user else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
    Unmanaged<AttemptContext>.fromOpaque(user).takeUnretainedValue()
        .header(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    return size * count
}

/// Curl result codes worth another attempt: timeouts, refused or reset connections, truncated
/// replies, TLS hiccups.
private func isRetryable(_ code: CURLcode) -> Bool {
    [CURLE_OPERATION_TIMEDOUT, CURLE_COULDNT_CONNECT, CURLE_GOT_NOTHING, CURLE_SEND_ERROR,
     CURLE_RECV_ERROR, CURLE_PARTIAL_FILE, CURLE_SSL_CONNECT_ERROR, CURLE_HTTP2, CURLE_HTTP2_STREAM]
        .contains(code)
}

/// One worker thread's easy handle (reused, so connections are kept alive between files).
final class TransferWorker {
    let downloader: Downloader
    let handle: UnsafeMutableRawPointer
    var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    var configuration: DownloaderConfiguration { downloader.configuration }

    init(downloader: Downloader) {
        self.downloader = downloader
        handle = curl_easy_init()
    }

    func close() { curl_easy_cleanup(handle) }

    /// Runs one HTTP exchange; returns libcurl's code and its error text.
    private func perform(url: String, offset: Int64, bearerToken: String?, context: AttemptContext) -> (CURLcode, String) {
        curl_easy_reset(handle)
        var headers: UnsafeMutablePointer<curl_slist>?
        if let bearerToken { headers = curl_slist_append(headers, "Authorization: Bearer \(bearerToken)") }
        defer { curl_slist_free_all(headers) }
        let unmanaged = Unmanaged.passUnretained(context).toOpaque()
        hrtem_curl_setopt_string(handle, CURLOPT_URL, url)
        hrtem_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        hrtem_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 1)
        hrtem_curl_setopt_long(handle, CURLOPT_MAXREDIRS, 10)
        hrtem_curl_setopt_string(handle, CURLOPT_USERAGENT, configuration.userAgent)
        hrtem_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(configuration.connectTimeout * 1000))
        hrtem_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, configuration.lowSpeedLimit)
        hrtem_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, max(1, configuration.lowSpeedTime))
        hrtem_curl_setopt_long(handle, CURLOPT_BUFFERSIZE, configuration.bufferSize)
        hrtem_curl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        hrtem_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, bodyCallback)
        hrtem_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, unmanaged)
        hrtem_curl_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, headerCallback)
        hrtem_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, unmanaged)
        if headers != nil { hrtem_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headers) }
        // `Range: bytes=N-` rather than CURLOPT_RESUME_FROM_LARGE: libcurl then passes a 200 reply
        // (a server that ignores ranges) to the body callback, which restarts from zero on the
        // same request instead of failing and asking again.
        if offset > 0 { hrtem_curl_setopt_string(handle, CURLOPT_RANGE, "\(offset)-") }
        errorBuffer.withUnsafeMutableBytes { buffer in
            buffer[0] = 0
            hrtem_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, buffer.baseAddress)
        }
        let code = curl_easy_perform(handle)
        hrtem_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, nil)
        var status = 0
        hrtem_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        if status != 0 { context.status = status }
        let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (code, detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail)
    }

    func fetchDocument(url: String, bearerToken: String?, rateLimiter: RateLimiter?, limit: Int) throws -> Data {
        let policy = configuration.retry
        var attempt = 0
        while true {
            attempt += 1
            let context = AttemptContext()
            context.memory = Data()
            context.memoryLimit = limit
            rateLimiter?.acquire()
            let (code, message) = perform(url: url, offset: 0, bearerToken: bearerToken, context: context)
            if code == CURLE_OK && (context.status == 0 || (200..<300).contains(context.status)) {
                return context.memory ?? Data()
            }
            if let ioError = context.ioError { throw MirrorError.io(url, ioError) }
            let retryable = code == CURLE_OK ? RetryPolicy.isRetryable(httpStatus: context.status) : isRetryable(code)
            if !retryable || attempt >= policy.maxAttempts {
                if code == CURLE_OK { throw MirrorError.http(url: url, status: context.status, attempts: attempt) }
                throw MirrorError.network(url: url, message: message, attempts: attempt)
            }
            let wait = policy.delay(afterAttempt: attempt, streamIndex: stableIndex(url),
                                    retryAfter: context.retryAfter.flatMap { parseRetryAfter($0) })
            Thread.sleep(forTimeInterval: wait)
        }
    }

    func fetch(_ request: DownloadRequest) -> DownloadResult {
        let started = monotonicSeconds()
        var result = DownloadResult(request: request, outcome: .fetched, file: nil, attempts: 0,
                                    bytesTransferred: 0, resumedFrom: 0, verifiedBy: "", seconds: 0)
        defer { result.seconds = monotonicSeconds() - started }
        let store = downloader.store
        let expected = request.expected

        if let sha = expected.knownSHA256, let existing = store.lookup(sha256: sha, size: expected.size),
           !configuration.rehashStoredFiles || ((try? store.verify(existing)) ?? false) {
            result.outcome = .skipped
            result.file = existing
            result.verifiedBy = "already stored"
            return result
        }

        let partial = downloader.partialLocation(for: request)
        do {
            try FileManager.default.createDirectory(at: store.temporaryFolder, withIntermediateDirectories: true)
        } catch {
            result.outcome = .failed(.io(store.temporaryFolder.path, "cannot create folder: \(error.localizedDescription)"))
            return result
        }
        let fd = open(partial.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            result.outcome = .failed(.io(partial.path, "cannot open partial file: \(String(cString: strerror(errno)))"))
            return result
        }
        var closed = false
        defer { if !closed { Foundation.close(fd) } }
        // Two hrtem processes must never write the same partial file.
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            result.outcome = .failed(.busy(request.key))
            return result
        }

        let context = AttemptContext()
        context.fd = fd
        context.wantsMD5 = expected.published?.algorithm == .md5
        context.progress = downloader.progress
        let policy = configuration.retry
        var lastFailure: MirrorError?
        var completed = false

        while result.attempts < policy.maxAttempts {
            result.attempts += 1
            var existing = Int64(lseek(fd, 0, SEEK_END))
            if let size = expected.size, existing > size { existing = truncate(fd) }
            context.resetDigests()
            if existing > 0 {
                if let error = hashPrefix(fd: fd, count: existing, context: context) {
                    result.outcome = .failed(.io(partial.path, error))
                    return result
                }
                if result.attempts == 1 { result.resumedFrom = existing }
            }
            if let size = expected.size, existing == size {
                completed = true  // a previous run got every byte but stopped before publishing
                break
            }
            context.offset = existing
            context.status = 0
            context.decision = nil
            context.rangeMismatch = false
            context.ioError = nil
            context.received = 0
            request.rateLimiter?.acquire()
            let (code, message) = perform(url: request.url, offset: existing, bearerToken: request.bearerToken, context: context)
            result.bytesTransferred += context.received
            if let ioError = context.ioError {
                result.outcome = .failed(.io(partial.path, ioError))
                return result
            }
            let httpOK = context.status == 0 || (200..<300).contains(context.status)
            if code == CURLE_OK && httpOK {
                let have = Int64(lseek(fd, 0, SEEK_END))
                if let size = expected.size, have < size {
                    lastFailure = .network(url: request.url, message: "reply ended after \(have) of \(size) bytes", attempts: result.attempts)
                    sleepBeforeRetry(request, attempt: result.attempts, retryAfter: nil)
                    continue
                }
                completed = true
                break
            }
            if context.status == 416, existing > 0, context.contentRangeTotal == existing {
                // The partial file already holds the whole file (a run stopped just before
                // publishing it): verify it as it is.
                completed = true
                break
            }
            if context.rangeMismatch || context.status == 416 || code == CURLE_RANGE_ERROR {
                // The server's idea of the range does not match the partial file: start over.
                _ = truncate(fd)
                lastFailure = .http(url: request.url, status: context.status, attempts: result.attempts)
                continue
            }
            if code == CURLE_OK || code == CURLE_WRITE_ERROR {
                lastFailure = .http(url: request.url, status: context.status, attempts: result.attempts)
                if RetryPolicy.isRetryable(httpStatus: context.status) {
                    sleepBeforeRetry(request, attempt: result.attempts, retryAfter: context.retryAfter)
                    continue
                }
                break
            }
            lastFailure = .network(url: request.url, message: message, attempts: result.attempts)
            if isRetryable(code) {
                sleepBeforeRetry(request, attempt: result.attempts, retryAfter: nil)
                continue
            }
            break
        }

        guard completed else {
            if case .http(_, let status, _)? = lastFailure, !RetryPolicy.isRetryable(httpStatus: status) {
                // Nothing worth resuming from a file the mirror does not have.
                unlink(partial.path)
            }
            result.outcome = .failed(lastFailure.map { withAttempts($0, result.attempts) }
                ?? .network(url: request.url, message: "no attempt made", attempts: 0))
            return result
        }

        let size = Int64(lseek(fd, 0, SEEK_END))
        let sha256 = context.sha256.finalizeHex()
        let md5 = context.md5?.finalizeHex()
        var mismatch: (String, String)?
        if let published = expected.published {
            let found = published.algorithm == .sha256 ? sha256 : (md5 ?? "")
            result.verifiedBy = "\(published.algorithm.rawValue) (mirror)"
            if found != published.hex { mismatch = ("\(published)", "\(published.algorithm.rawValue):\(found)") }
        } else if let recorded = expected.sha256 {
            result.verifiedBy = "sha-256 (recorded)"
            if recorded != sha256 { mismatch = ("sha-256:\(recorded)", "sha-256:\(sha256)") }
        } else if expected.size != nil {
            result.verifiedBy = "size"
        } else {
            result.verifiedBy = "none: first download"
        }
        if mismatch == nil, let expectedSize = expected.size, expectedSize != size {
            mismatch = ("\(expectedSize) bytes", "\(size) bytes")
        }
        if let (want, got) = mismatch {
            Foundation.close(fd)
            closed = true
            do {
                let place = try store.quarantine(partial, key: request.key,
                                                 reason: "expected \(want), got \(got) from \(request.url)")
                result.outcome = .failed(.verification(key: request.key, expected: want, found: got, quarantinedAt: place.path))
            } catch {
                unlink(partial.path)
                result.outcome = .failed(.verification(key: request.key, expected: want, found: got, quarantinedAt: "(removed: \(error))"))
            }
            return result
        }
        if fsync(fd) != 0 {
            result.outcome = .failed(.io(partial.path, "fsync failed: \(String(cString: strerror(errno)))"))
            return result
        }
        do {
            result.file = try store.publish(temporary: partial, sha256: sha256, size: size)
            result.outcome = .fetched
        } catch let error as MirrorError {
            result.outcome = .failed(error)
        } catch {
            result.outcome = .failed(.io(partial.path, "\(error)"))
        }
        return result
    }

    private func truncate(_ fd: Int32) -> Int64 {
        _ = ftruncate(fd, 0)
        _ = lseek(fd, 0, SEEK_SET)
        return 0
    }

    /// Feeds the bytes already in the partial file to the digests (resume), in bounded reads.
    private func hashPrefix(fd: Int32, count: Int64, context: AttemptContext) -> String? {
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var position: Int64 = 0
        while position < count {
            let n = pread(fd, buffer, min(chunk, Int(count - position)), off_t(position))
            if n < 0 {
                if errno == EINTR { continue }
                return "cannot read partial file: \(String(cString: strerror(errno)))"
            }
            if n == 0 { return "partial file shorter than expected" }
            context.sha256.update(buffer, n)
            context.md5?.update(buffer, n)
            position += Int64(n)
        }
        _ = lseek(fd, 0, SEEK_END)
        return nil
    }

    private func sleepBeforeRetry(_ request: DownloadRequest, attempt: Int, retryAfter: String?) {
        guard attempt < configuration.retry.maxAttempts else { return }
        let wait = configuration.retry.delay(afterAttempt: attempt, streamIndex: stableIndex(request.url),
                                             retryAfter: retryAfter.flatMap { parseRetryAfter($0) })
        Thread.sleep(forTimeInterval: wait)
    }
}

private func withAttempts(_ error: MirrorError, _ attempts: Int) -> MirrorError {
    switch error {
    case let .http(url, status, _): return .http(url: url, status: status, attempts: attempts)
    case let .network(url, message, _): return .network(url: url, message: message, attempts: attempts)
    default: return error
    }
}
