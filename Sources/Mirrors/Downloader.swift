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

/// One HTTP exchange as libcurl's callbacks see it (reached through their user-data pointer):
/// the reply's headers, what to do with its body, and where the body goes. A new one is made for
/// every attempt, so nothing from an earlier reply leaks into the next.
final class Exchange {
    enum Sink {
        /// Append to a partial file, resuming at `offset` (the Range asked for).
        case file(PartialFile, TransferDigests)
        /// Keep in memory, up to a limit (a listing, a JSON reply).
        case memory(limit: Int)
    }
    enum BodyDecision { case write, discard, abort }

    let sink: Sink
    /// What errors name: the partial file, or the URL of an in-memory reply.
    private let source: String
    /// Where the body's first byte lands: the Range asked for, or 0 once restarted from zero.
    private var offset: Int64
    private let progress: DownloadProgress?
    var status = 0
    private(set) var retryAfter: String?
    private var contentRangeStart: Int64?
    /// The complete length from `Content-Range: bytes */N` (a 416 reply names it).
    private(set) var contentRangeTotal: Int64?
    private var contentLength: Int64?
    private var decision: BodyDecision?
    /// A 206 reply for another range than the one asked for.
    private(set) var rangeMismatch = false
    /// A local failure (writing the partial file, a reply over the memory limit).
    private(set) var localFailure: MirrorError?
    /// Body bytes received (written to the sink).
    private(set) var received: Int64 = 0
    private(set) var memory = Data()

    init(partial: PartialFile, digests: TransferDigests, offset: Int64, progress: DownloadProgress?) {
        sink = .file(partial, digests)
        source = partial.url.path
        self.offset = offset
        self.progress = progress
    }

    init(memoryLimit: Int, url: String) {
        sink = .memory(limit: memoryLimit)
        source = url
        offset = 0
        progress = nil
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
        let success = status == 0 || (200..<300).contains(status)
        guard success else { return .discard }
        guard case .file(let partial, let digests) = sink else { return .write }
        if status == 206 {
            if (contentRangeStart ?? 0) != offset {
                rangeMismatch = true
                return .abort
            }
        } else if offset > 0 && status != 0 {
            // The server ignored the Range request and sends the whole body: start over.
            do { try partial.truncate() } catch {
                localFailure = error
                return .abort
            }
            digests.reset()
            offset = 0
        }
        if let contentLength { progress?.announce(bytes: contentLength) }
        return .write
    }

    func body(_ pointer: UnsafeMutablePointer<CChar>, _ count: Int) -> Int {
        if decision == nil { decision = decide() }
        switch decision! {
        case .discard: return count
        case .abort: return 0
        case .write: break
        }
        switch sink {
        case .memory(let limit):
            if memory.count + count > limit {
                localFailure = .io(source, "reply larger than \(limit) bytes")
                return 0
            }
            memory.append(UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: count)
        case .file(let partial, let digests):
            do { try partial.append(pointer, count) } catch {
                localFailure = error
                return 0
            }
            digests.update(pointer, count)
            progress?.add(bytes: Int64(count))
        }
        received += Int64(count)
        return count
    }
}

private let bodyCallback: hrtem_curl_data_callback = { data, size, count, user in
    guard let data, let user else { return 0 }
    return Unmanaged<Exchange>.fromOpaque(user).takeUnretainedValue().body(data, size * count)
}

private let headerCallback: hrtem_curl_data_callback = { data, size, count, user in
    guard let data, let user else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
    Unmanaged<Exchange>.fromOpaque(user).takeUnretainedValue()
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
    var store: ContentStore { downloader.store }

    init(downloader: Downloader) {
        self.downloader = downloader
        handle = curl_easy_init()
    }

    func close() { curl_easy_cleanup(handle) }

    /// Runs one HTTP exchange; returns libcurl's code and its error text.
    private func perform(url: String, offset: Int64, bearerToken: String?, exchange: Exchange) -> (CURLcode, String) {
        curl_easy_reset(handle)
        var headers: UnsafeMutablePointer<curl_slist>?
        if let bearerToken { headers = curl_slist_append(headers, "Authorization: Bearer \(bearerToken)") }
        defer { curl_slist_free_all(headers) }
        let unmanaged = Unmanaged.passUnretained(exchange).toOpaque()
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
        if status != 0 { exchange.status = status }
        let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (code, detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail)
    }

    func fetchDocument(url: String, bearerToken: String?, rateLimiter: RateLimiter?, limit: Int) throws -> Data {
        let policy = configuration.retry
        var attempt = 0
        while true {
            attempt += 1
            let exchange = Exchange(memoryLimit: limit, url: url)
            rateLimiter?.acquire()
            let (code, message) = perform(url: url, offset: 0, bearerToken: bearerToken, exchange: exchange)
            if code == CURLE_OK && (exchange.status == 0 || (200..<300).contains(exchange.status)) {
                return exchange.memory
            }
            if let failure = exchange.localFailure { throw failure }
            let retryable = code == CURLE_OK ? RetryPolicy.isRetryable(httpStatus: exchange.status) : isRetryable(code)
            if !retryable || attempt >= policy.maxAttempts {
                if code == CURLE_OK { throw MirrorError.http(url: url, status: exchange.status, attempts: attempt) }
                throw MirrorError.network(url: url, message: message, attempts: attempt)
            }
            let wait = policy.delay(afterAttempt: attempt, streamIndex: stableIndex(url),
                                    retryAfter: exchange.retryAfter.flatMap { parseRetryAfter($0) })
            Thread.sleep(forTimeInterval: wait)
        }
    }

    /// One file: skipped when already stored, else transferred into its partial file, verified,
    /// and published into the store (or quarantined).
    func fetch(_ request: DownloadRequest) -> DownloadResult {
        let started = monotonicSeconds()
        var result = DownloadResult(request: request, outcome: .fetched, file: nil, attempts: 0,
                                    bytesTransferred: 0, resumedFrom: 0, verifiedBy: "", seconds: 0)
        defer { result.seconds = monotonicSeconds() - started }

        if let stored = alreadyStored(request.expected) {
            result.outcome = .skipped
            result.file = stored
            result.verifiedBy = "already stored"
            return result
        }
        do {
            let partial = try PartialFile(url: downloader.partialLocation(for: request), key: request.key)
            defer { partial.close() }
            let digests = TransferDigests(wantsMD5: request.expected.published?.algorithm == .md5)
            try transfer(request, into: partial, digests: digests, result: &result)
            let size = partial.size
            let (sha256, md5) = digests.finalize()
            let verification = Verification(expected: request.expected, size: size, sha256: sha256, md5: md5)
            result.verifiedBy = verification.method
            result.file = try publish(partial, request: request, verification: verification, sha256: sha256, size: size)
            result.outcome = .fetched
        } catch {
            result.outcome = .failed(error)
        }
        return result
    }

    private func alreadyStored(_ expected: ExpectedContent) -> StoredFile? {
        guard let sha = expected.knownSHA256, let existing = store.lookup(sha256: sha, size: expected.size) else { return nil }
        if configuration.rehashStoredFiles, (try? store.verify(existing)) != true { return nil }
        return existing
    }

    /// Attempts until the partial file holds the whole file.
    /// - Throws: the failure that ended it: a fatal one, or the last when attempts ran out. A
    ///   partial file of a file the mirror refuses to serve (a non-retried HTTP status) is
    ///   deleted: there is nothing worth resuming.
    private func transfer(_ request: DownloadRequest, into partial: PartialFile, digests: TransferDigests,
                          result: inout DownloadResult) throws(MirrorError) {
        var lastFailure: MirrorError?
        while result.attempts < configuration.retry.maxAttempts {
            result.attempts += 1
            let offset = try partial.resumeOffset(expectedSize: request.expected.size, digests: digests)
            if result.attempts == 1 { result.resumedFrom = offset }
            // A previous run got every byte but stopped before publishing.
            if let size = request.expected.size, offset == size { return }
            let attempt = self.attempt(request, number: result.attempts, partial: partial, digests: digests, offset: offset)
            result.bytesTransferred += attempt.received
            switch attempt.outcome {
            case .completed:
                return
            case .fatal(let error):
                lastFailure = error
            case .restart(let error):
                try partial.truncate()
                lastFailure = error
                continue
            case .resumable(let error, _, let retryAfter):
                lastFailure = error
                sleepBeforeRetry(request, attempt: result.attempts, retryAfter: retryAfter)
                continue
            }
            break
        }
        let failure = lastFailure ?? .network(url: request.url, message: "no attempt made", attempts: 0)
        if case .http(_, let status, _, _) = failure, !RetryPolicy.isRetryable(httpStatus: status) { partial.remove() }
        throw failure
    }

    /// One request for the bytes the partial file lacks, and what its ending means.
    private func attempt(_ request: DownloadRequest, number: Int, partial: PartialFile, digests: TransferDigests,
                         offset: Int64) -> Attempt {
        let exchange = Exchange(partial: partial, digests: digests, offset: offset, progress: downloader.progress)
        request.rateLimiter?.acquire()
        let (code, message) = perform(url: request.url, offset: offset, bearerToken: request.bearerToken, exchange: exchange)
        let outcome: AttemptOutcome
        let status = exchange.status
        if let failure = exchange.localFailure {
            outcome = .fatal(failure)
        } else if code == CURLE_OK && (status == 0 || (200..<300).contains(status)) {
            let have = partial.size
            if let size = request.expected.size, have < size {
                outcome = .resumable(.network(url: request.url, message: "reply ended after \(have) of \(size) bytes",
                                              attempts: number, offset: have), resumeAt: have, retryAfter: nil)
            } else {
                outcome = .completed
            }
        } else if status == 416, offset > 0, exchange.contentRangeTotal == offset {
            // The partial file already holds the whole file (a run stopped just before
            // publishing it): verify it as it is.
            outcome = .completed
        } else if exchange.rangeMismatch || status == 416 || code == CURLE_RANGE_ERROR {
            outcome = .restart(.http(url: request.url, status: status, attempts: number, offset: offset))
        } else if code == CURLE_OK || code == CURLE_WRITE_ERROR {
            let error = MirrorError.http(url: request.url, status: status, attempts: number, offset: offset)
            outcome = RetryPolicy.isRetryable(httpStatus: status)
                ? .resumable(error, resumeAt: partial.size, retryAfter: exchange.retryAfter) : .fatal(error)
        } else {
            let have = partial.size
            let error = MirrorError.network(url: request.url, message: message, attempts: number, offset: have)
            outcome = isRetryable(code) ? .resumable(error, resumeAt: have, retryAfter: nil) : .fatal(error)
        }
        return Attempt(outcome: outcome, received: exchange.received)
    }

    /// Moves verified bytes into the store (fsync, then rename to their content address), or
    /// bytes that do not match into quarantine.
    /// - Throws: `MirrorError.verification` (with where the file went) or `.io`.
    private func publish(_ partial: PartialFile, request: DownloadRequest, verification: Verification,
                         sha256: String, size: Int64) throws(MirrorError) -> StoredFile {
        if let mismatch = verification.mismatch {
            partial.close()
            let place: String
            do {
                place = try store.quarantine(partial.url, key: request.key,
                                             reason: "expected \(mismatch.expected), got \(mismatch.found) from \(request.url)").path
            } catch {
                partial.remove()
                place = "(removed: \(error))"
            }
            throw .verification(key: request.key, expected: mismatch.expected, found: mismatch.found, quarantinedAt: place)
        }
        try partial.sync()
        do {
            return try store.publish(temporary: partial.url, sha256: sha256, size: size)
        } catch let error as MirrorError {
            throw error
        } catch {
            throw .io(partial.url.path, "\(error)")
        }
    }

    private func sleepBeforeRetry(_ request: DownloadRequest, attempt: Int, retryAfter: String?) {
        guard attempt < configuration.retry.maxAttempts else { return }
        let wait = configuration.retry.delay(afterAttempt: attempt, streamIndex: stableIndex(request.url),
                                             retryAfter: retryAfter.flatMap { parseRetryAfter($0) })
        Thread.sleep(forTimeInterval: wait)
    }
}
