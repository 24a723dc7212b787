import Foundation
import Micrograph
@testable import Mirrors
import TestSupport
import XCTest

/// The downloader against a local mirror with injected faults. Every case ends in a verified
/// file in the store or a clear error, and never leaves a partial file under a final name.
final class DownloaderTests: XCTestCase {
    var work: URL!
    var tree: URL!
    var store: ContentStore!
    var servers: [LocalMirror] = []
    let folder = "2021_08_26 5nm Au nanoparticles on C/Ultrathin Carbon"
    let file = "Au_UTC_205kX_2630e_0p1596s_01.dm3"
    var content = Data()
    var path: RemotePath { try! MirrorDefinition.framePath(folder: folder, file: file) }

    override func setUpWithError() throws {
        work = try makeTemporaryFolder("hrtem-mirrors")
        tree = work.appendingPathComponent("tree")
        store = ContentStore(root: work.appendingPathComponent("data"))
        content = testBytes(count: 300_000, seed: 11)
        let target = tree.appendingPathComponent(folder).appendingPathComponent(file)
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try content.write(to: target)
    }

    override func tearDown() {
        servers.forEach { $0.stop() }
        try? FileManager.default.removeItem(at: work)
    }

    func serve(_ faults: [String: [[String: Any]]] = [:]) throws -> LocalMirror {
        let server = try LocalMirror(root: tree, faults: faults)
        servers.append(server)
        return server
    }

    /// Short timeouts and back-off so fault cases take a second or two.
    func downloader(maxAttempts: Int = 5) -> Downloader {
        var configuration = DownloaderConfiguration()
        configuration.connectTimeout = 5
        configuration.lowSpeedLimit = 20_000
        configuration.lowSpeedTime = 1
        configuration.retry = RetryPolicy(maxAttempts: maxAttempts, baseDelay: 0.05, maxDelay: 0.2, maxRetryAfter: 5, seed: 1)
        configuration.jobs = 2
        return Downloader(store: store, configuration: configuration)
    }

    func request(_ server: LocalMirror, expected: ExpectedContent = ExpectedContent()) -> DownloadRequest {
        var mirror = MirrorDefinition.nersc
        mirror.baseURL = server.baseURL
        return DownloadRequest(key: path.description, url: mirror.url(for: path), expected: expected)
    }

    /// Files under the store folder (final names only).
    func storedFiles() -> [URL] {
        let enumerator = FileManager.default.enumerator(at: store.storeFolder, includingPropertiesForKeys: nil)
        return (enumerator?.allObjects as? [URL] ?? []).filter { !$0.hasDirectoryPath && !$0.path.hasSuffix("/") }
            .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
    }

    func assertVerified(_ result: DownloadResult, file: StaticString = #filePath, line: UInt = #line) throws {
        guard result.outcome == .fetched || result.outcome == .skipped else {
            return XCTFail("expected a verified file, got \(result.outcome)", file: file, line: line)
        }
        let stored = try XCTUnwrap(result.file, file: file, line: line)
        XCTAssertEqual(stored.sha256, sha256Hex(content), file: file, line: line)
        XCTAssertEqual(stored.url, store.location(sha256: sha256Hex(content)), file: file, line: line)
        XCTAssertEqual(try Data(contentsOf: stored.url), content, file: file, line: line)
        XCTAssertEqual(storedFiles().count, 1, file: file, line: line)
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: store.temporaryFolder.path)) ?? []
        XCTAssertEqual(leftovers, [], "no partial file left once published", file: file, line: line)
    }

    func testCleanFetchThenSkipWhenStored() throws {
        let server = try serve()
        let first = downloader().download([request(server)])[0]
        try assertVerified(first)
        XCTAssertEqual(first.attempts, 1)
        XCTAssertEqual(first.bytesTransferred, Int64(content.count))
        XCTAssertEqual(first.verifiedBy, "none: first download")
        let requestsBefore = server.requests().count
        let second = downloader().download([request(server, expected: ExpectedContent(sha256: first.file!.sha256))])[0]
        XCTAssertEqual(second.outcome, .skipped)
        XCTAssertEqual(server.requests().count, requestsBefore, "a stored file is not fetched again")
        // The request was for the percent-encoded path of a folder with spaces and '/'.
        XCTAssertEqual(server.requests().first?.path, path.description)
        XCTAssertEqual(server.requests().first?.agent, "hrtem/\(hrtemVersion)")
        XCTAssertNil(server.requests().first?.authorization)
    }

    func testDroppedConnectionResumesWithRange() throws {
        let server = try serve([path.description: [["kind": "drop", "after": 100_000, "times": 1]]])
        let result = downloader().download([request(server, expected: ExpectedContent(size: Int64(content.count)))])[0]
        try assertVerified(result)
        XCTAssertEqual(result.attempts, 2)
        let log = server.requests()
        XCTAssertEqual(log.count, 2)
        XCTAssertEqual(log[1].range, "bytes=100000-")
        XCTAssertEqual(log[1].status, 206)
        XCTAssertEqual(result.bytesTransferred, Int64(content.count), "each byte crossed the network once")
    }

    /// The drop fault's contract, which the resume test relies on: exactly N body bytes reach
    /// the client before the reset, even a client with a small receive window that is not
    /// reading while the server sends (a reset discards what the server has not yet delivered).
    func testDropFaultDeliversAllNBytesToAClientThatIsSlowToRead() throws {
        let server = try serve([path.description: [["kind": "drop", "after": 100_000]]])
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var receiveBuffer: Int32 = 16 << 10
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(server.port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0)
        let get = "GET /\(path.description.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)!) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        XCTAssertEqual(get.withCString { send(fd, $0, strlen($0), 0) }, get.utf8.count)
        Thread.sleep(forTimeInterval: 0.3)  // not reading: the window closes long before 100 000 bytes
        var reply = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }  // the reset (or a close) after the bytes
            reply.append(contentsOf: buffer[0..<n])
        }
        let headerEnd = try XCTUnwrap(reply.range(of: Data("\r\n\r\n".utf8)))
        XCTAssertEqual(reply[headerEnd.upperBound...], content.prefix(100_000))
    }

    func testServerErrorThenSuccess() throws {
        let server = try serve([path.description: [["kind": "status", "code": 500, "times": 2]]])
        let result = downloader().download([request(server)])[0]
        try assertVerified(result)
        XCTAssertEqual(result.attempts, 3)
        XCTAssertEqual(server.requests().map(\.status), [500, 500, 200])
    }

    func testTooManyRequestsHonoursRetryAfter() throws {
        let server = try serve([path.description: [["kind": "status", "code": 429, "retry_after": "1", "times": 1]]])
        let started = Date()
        let result = downloader().download([request(server)])[0]
        try assertVerified(result)
        XCTAssertEqual(result.attempts, 2)
        // The back-off alone is at most 0.2 s here: only Retry-After explains a wait of 1 s.
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 1.0)
    }

    func testTricklingServerTripsLowSpeedTimeoutThenResumes() throws {
        let server = try serve([path.description: [["kind": "trickle", "after": 30_000, "bytes_per_second": 2_000, "times": 1]]])
        let result = downloader().download([request(server)])[0]
        try assertVerified(result)
        XCTAssertEqual(result.attempts, 2)
        // The abandoned first request is recorded when its handler notices the closed
        // connection, which may be after the resumed one.
        let log = server.requests()
        XCTAssertEqual(log.map(\.status).sorted(), [200, 206])
        XCTAssertNotNil(log.first { $0.status == 206 }?.range)
    }

    func testTricklingForeverFailsClearlyWithoutAFinalFile() throws {
        let server = try serve([path.description: [["kind": "trickle", "after": 1_000, "bytes_per_second": 500]]])
        let result = downloader(maxAttempts: 2).download([request(server)])[0]
        guard case .failed(let error) = result.outcome else { return XCTFail("\(result.outcome)") }
        XCTAssertTrue("\(error)".contains("after 2 attempts"), "\(error)")
        XCTAssertTrue("\(error)".lowercased().contains("too slow") || "\(error)".lowercased().contains("timeout")
                      || "\(error)".lowercased().contains("timed out"), "\(error)")
        XCTAssertEqual(storedFiles(), [])
        XCTAssertNil(result.file)
    }

    func testDigestMismatchIsQuarantinedAndReported() throws {
        let server = try serve([path.description: [["kind": "corrupt"]]])
        let expected = ExpectedContent(size: Int64(content.count),
                                       published: PublishedDigest(algorithm: .sha256, hex: sha256Hex(content)))
        let result = downloader().download([request(server, expected: expected)])[0]
        guard case .failed(.verification(_, let want, let got, let place)) = result.outcome else {
            return XCTFail("\(result.outcome)")
        }
        XCTAssertEqual(want, "sha-256:\(sha256Hex(content))")
        XCTAssertNotEqual(got, want)
        XCTAssertTrue(FileManager.default.fileExists(atPath: place))
        XCTAssertTrue(place.hasPrefix(store.quarantineFolder.path))
        XCTAssertEqual(storedFiles(), [], "nothing unverified under a final name")
        // A published MD5 is checked the same way.
        let md5 = DigestContext(md5: true)
        content.withUnsafeBytes { md5.update($0.baseAddress!, $0.count) }
        let md5Expected = ExpectedContent(published: PublishedDigest(algorithm: .md5, hex: md5.finalizeHex()))
        let viaMD5 = downloader().download([request(server, expected: md5Expected)])[0]
        guard case .failed(.verification) = viaMD5.outcome else { return XCTFail("\(viaMD5.outcome)") }
    }

    func testMD5PublishedDigestVerifiesAGoodFile() throws {
        let server = try serve()
        let md5 = DigestContext(md5: true)
        content.withUnsafeBytes { md5.update($0.baseAddress!, $0.count) }
        let expected = ExpectedContent(size: Int64(content.count), published: PublishedDigest(algorithm: .md5, hex: md5.finalizeHex()))
        let result = downloader().download([request(server, expected: expected)])[0]
        try assertVerified(result)
        XCTAssertEqual(result.verifiedBy, "md5 (mirror)")
    }

    func testServerWithoutRangeSupportRestartsFromZero() throws {
        let server = try serve([path.description: [["kind": "drop", "after": 100_000, "times": 1, "also_no_range": true],
                                                   ["kind": "no_range"]]])
        let result = downloader().download([request(server, expected: ExpectedContent(size: Int64(content.count)))])[0]
        try assertVerified(result)
        let log = server.requests()
        XCTAssertEqual(log.count, 2)
        XCTAssertEqual(log[1].range, "bytes=100000-", "the second attempt asked to resume")
        XCTAssertEqual(log[1].status, 200, "the server ignored the range and sent everything")
        XCTAssertEqual(result.bytesTransferred, 100_000 + Int64(content.count))
    }

    func testStalePartialFromAnotherFileIsCaughtByTheDigest() throws {
        // A partial file whose bytes are wrong (e.g. the mirror changed the file): resuming would
        // splice old and new bytes; the digest catches it and nothing is published.
        let server = try serve()
        let expected = ExpectedContent(size: Int64(content.count), sha256: sha256Hex(content))
        let downloader = downloader()
        let partial = downloader.partialLocation(for: request(server, expected: expected))
        try FileManager.default.createDirectory(at: partial.deletingLastPathComponent(), withIntermediateDirectories: true)
        try testBytes(count: 50_000, seed: 99).write(to: partial)
        let result = downloader.download([request(server, expected: expected)])[0]
        guard case .failed(.verification) = result.outcome else { return XCTFail("\(result.outcome)") }
        XCTAssertEqual(result.resumedFrom, 50_000)
        XCTAssertEqual(storedFiles(), [])
        // The bad partial went to quarantine, so the next run starts clean and succeeds.
        try assertVerified(downloader.download([request(server, expected: expected)])[0])
    }

    func testNotFoundIsAClearErrorAndLeavesNothing() throws {
        let server = try serve()
        var missing = request(server)
        missing.url = server.baseURL + "no%20such/file.dm3"
        missing.key = "no such/file.dm3"
        let result = downloader().download([missing])[0]
        XCTAssertEqual(result.outcome, .failed(.http(url: missing.url, status: 404, attempts: 1)))
        XCTAssertTrue("\(MirrorError.http(url: missing.url, status: 404, attempts: 1))".contains("not found on the mirror"))
        XCTAssertEqual(storedFiles(), [])
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: store.temporaryFolder.path)) ?? [], [])
    }

    func testManyFilesInParallelWithAKeyThatTriesToEscape() throws {
        var paths: [RemotePath] = []
        var contents: [Data] = []
        for i in 0..<6 {
            let data = testBytes(count: 50_000 + i * 1_000, seed: UInt64(100 + i))
            let relative = try RemotePath("session \(i % 2)/frame_\(i).dm3")
            let target = try safeLocation(of: relative, inside: tree)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try data.write(to: target)
            paths.append(relative)
            contents.append(data)
        }
        let server = try serve()
        var mirror = MirrorDefinition.nersc
        mirror.baseURL = server.baseURL
        var requests = paths.map { DownloadRequest(key: $0.description, url: mirror.url(for: $0)) }
        // A key is only a label: even one naming ../ cannot place a file outside the store.
        requests[0].key = "../../../../tmp/escaped.dm3"
        let downloader = downloader()
        let results = downloader.download(requests)
        XCTAssertEqual(results.map(\.outcome), Array(repeating: .fetched, count: 6))
        for (result, data) in zip(results, contents) {
            XCTAssertEqual(try Data(contentsOf: result.file!.url), data)
            XCTAssertTrue(result.file!.url.path.hasPrefix(store.storeFolder.path + "/"))
        }
        XCTAssertEqual(downloader.progress.filesDone, 6)
        XCTAssertEqual(downloader.progress.bytesReceived, Int64(contents.map(\.count).reduce(0, +)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/escaped.dm3"))
    }

    func testDryadListingThenVerifiedDownloadsWithToken() throws {
        // A Dryad-shaped API served from files: dataset -> version files -> downloads.
        let api = tree.appendingPathComponent("api/v2")
        let datasetFile = api.appendingPathComponent("datasets/doi:10.7941/D1SP93")
        try FileManager.default.createDirectory(at: datasetFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(#"{"_links": {"stash:version": {"href": "/api/v2/versions/5"}}}"#.utf8).write(to: datasetFile)
        let h5 = testBytes(count: 70_000, seed: 5)
        try FileManager.default.createDirectory(at: api.appendingPathComponent("files/1"), withIntermediateDirectories: true)
        try h5.write(to: api.appendingPathComponent("files/1/download"))
        let listing = """
        {"_embedded": {"stash:files": [{"path": "Au_2p2nm_Images.h5", "size": \(h5.count),
          "digest": "\(sha256Hex(h5))", "digestType": "sha-256",
          "_links": {"stash:download": {"href": "/api/v2/files/1/download"}}}]}}
        """
        try FileManager.default.createDirectory(at: api.appendingPathComponent("versions/5"), withIntermediateDirectories: true)
        try Data(listing.utf8).write(to: api.appendingPathComponent("versions/5/files"))
        let server = try serve()
        let registry = MirrorRegistry(userFolder: nil, environment: ["HRTEM_MIRROR_DRYAD_URL": server.baseURL + "api/v2/",
                                                                     "DRYAD_TOKEN": "secret"])
        let client = MirrorClient(definition: try registry.mirror(named: "dryad"), downloader: downloader(),
                                  environment: registry.environment)
        XCTAssertNil(client.rateLimiter, "a token lifts the anonymous rate limit")
        XCTAssertEqual(client.bearerToken, "secret")
        let files = try client.listFiles()
        XCTAssertEqual(files.map(\.path.description), ["Au_2p2nm_Images.h5"])
        let result = client.downloader.download([client.request(for: files[0])])[0]
        XCTAssertEqual(result.outcome, .fetched)
        XCTAssertEqual(result.verifiedBy, "sha-256 (mirror)")
        XCTAssertEqual(try Data(contentsOf: result.file!.url), h5)
        XCTAssertEqual(Set(server.requests().map(\.authorization)), ["Bearer secret"], "the token goes with every Dryad request")
        let anonymous = MirrorClient(definition: .dryad, downloader: downloader(), environment: [:])
        XCTAssertEqual(anonymous.rateLimiter?.ratePerSecond ?? 0, 0.5, accuracy: 1e-12)
    }

    func testCompletePartialFromAnInterruptedRunIsPublishedWithoutTransfer() throws {
        // A run that got every byte but was killed before the rename: the Range request gets a
        // 416 naming the full length, which equals the partial file; it is verified and published.
        let server = try serve()
        let downloader = downloader()
        let partial = downloader.partialLocation(for: request(server))
        try FileManager.default.createDirectory(at: partial.deletingLastPathComponent(), withIntermediateDirectories: true)
        try content.write(to: partial)
        let result = downloader.download([request(server)])[0]
        try assertVerified(result)
        XCTAssertEqual(result.bytesTransferred, 0)
        XCTAssertEqual(result.resumedFrom, Int64(content.count))
        XCTAssertEqual(server.requests().map(\.status), [416])
    }

    func testAFailureCarriesItsStatusAttemptsAndOffsetAndKeepsTheBytesToResume() throws {
        // A partial file of 50 000 bytes and a server that keeps answering 503: the error says
        // which status, after how many attempts, asking from which byte; the bytes stay for the
        // next run, and that run resumes from them.
        let server = try serve([path.description: [["kind": "status", "code": 503, "times": 2]]])
        let downloader = downloader(maxAttempts: 2)
        let request = request(server)
        let partial = downloader.partialLocation(for: request)
        try FileManager.default.createDirectory(at: partial.deletingLastPathComponent(), withIntermediateDirectories: true)
        try content.prefix(50_000).write(to: partial)
        let failed = downloader.download([request])[0]
        XCTAssertEqual(failed.outcome, .failed(.http(url: request.url, status: 503, attempts: 2, offset: 50_000)))
        XCTAssertTrue("\(MirrorError.http(url: request.url, status: 503, attempts: 2, offset: 50_000))".contains("asking from byte 50000"))
        XCTAssertEqual(server.requests().map(\.range), ["bytes=50000-", "bytes=50000-"])
        XCTAssertEqual(try Data(contentsOf: partial).count, 50_000, "a retried status keeps the partial file")
        let resumed = downloader.download([request])[0]
        try assertVerified(resumed)
        XCTAssertEqual(resumed.resumedFrom, 50_000)
        XCTAssertEqual(resumed.bytesTransferred, Int64(content.count - 50_000))
    }

    func testTheSameURLTwiceIsFetchedOnce() throws {
        let server = try serve()
        let results = downloader().download([request(server), request(server)])
        XCTAssertEqual(results.map(\.outcome), [.fetched, .fetched])
        XCTAssertEqual(results[0].file, results[1].file)
        XCTAssertEqual(server.requests().count, 1)
    }

    func testStatusLineEstimatesTheTotalFromContentLength() throws {
        let server = try serve()
        let downloader = downloader()
        let display = ProgressDisplay(downloader: downloader, totalFiles: 3, expectedBytes: nil, interactive: false,
                                      write: { _ in })
        XCTAssertTrue(display.statusLine().hasPrefix("[0/3] 0 B  "), display.statusLine())
        _ = downloader.download([request(server)])
        let line = display.statusLine()
        XCTAssertTrue(line.hasPrefix("[1/3] 300.0 kB of ~900.0 kB"), line)
        XCTAssertTrue(line.contains("ETA"), line)
        let known = ProgressDisplay(downloader: downloader, totalFiles: 1, expectedBytes: 300_000, interactive: false, write: { _ in })
        XCTAssertTrue(known.statusLine().hasPrefix("[1/1] 300.0 kB of 300.0 kB"), known.statusLine())
        // Log lines when not on a terminal.
        let lines = Locked("")
        let logged = ProgressDisplay(downloader: downloader, totalFiles: 1, expectedBytes: nil, interactive: false,
                                     write: { line in lines.withLock { $0 += line } })
        let result = downloader.download([request(server, expected: ExpectedContent(sha256: sha256Hex(content)))])[0]
        logged.finished(result)
        XCTAssertTrue(lines.value.hasPrefix("skipped [2/1] \(path) (already stored)"), lines.value)
        let summary = FetchSummary([result], seconds: 1)
        XCTAssertTrue(summary.text.hasPrefix("fetched 0, skipped 1, failed 0"), summary.text)
    }
}
