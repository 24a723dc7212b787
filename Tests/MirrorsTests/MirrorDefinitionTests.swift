import Foundation
import Micrograph
@testable import Mirrors
import TestSupport
import XCTest

final class MirrorDefinitionTests: XCTestCase {
    func testNERSCLayoutEncodesEachSegment() throws {
        let folder = "2021_08_26 5nm Au nanoparticles on C/Ultrathin Carbon"
        let file = "Au_UTC_205kX_2630e_0p1596s_01.dm3"
        let nersc = MirrorDefinition.nersc
        XCTAssertEqual(nersc.url(for: try MirrorDefinition.framePath(folder: folder, file: file)),
                       "https://portal.nersc.gov/project/m3795/hrtem-generalization/2021_08_26%205nm%20Au%20nanoparticles%20on%20C/Ultrathin%20Carbon/Au_UTC_205kX_2630e_0p1596s_01.dm3")
        XCTAssertEqual(nersc.url(for: try MirrorDefinition.labelPath(folder: folder, file: file)),
                       "https://portal.nersc.gov/project/m3795/hrtem-generalization/2021_08_26%205nm%20Au%20nanoparticles%20on%20C/Ultrathin%20Carbon/Labels/Au_UTC_205kX_2630e_0p1596s_01_label.png")
        // Characters that would change a URL's meaning are encoded inside a segment.
        XCTAssertEqual(percentEncodeSegment("a%b?c#d e+é"), "a%25b%3Fc%23d%20e%2B%C3%A9")
        // A base without its trailing slash gives the same URL.
        var bare = nersc
        bare.baseURL = "http://127.0.0.1:8/m"
        XCTAssertEqual(bare.url(for: try RemotePath("x y/z")), "http://127.0.0.1:8/m/x%20y/z")
    }

    func testEveryRowOfTheStudyTableMapsToAURLThatDecodesBack() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let text = try String(contentsOf: reference.appendingPathComponent("Dataset_metadata.csv"), encoding: .utf8)
        var rows = 0
        for line in text.split(whereSeparator: \.isNewline).dropFirst() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let file = fields[0], folder = fields[fields.count - 1]
            let url = MirrorDefinition.nersc.url(for: try MirrorDefinition.framePath(folder: folder, file: file))
            let parsed = try XCTUnwrap(URL(string: url), url)
            XCTAssertEqual(parsed.path, "/project/m3795/hrtem-generalization/\(folder)/\(file)")
            rows += 1
        }
        XCTAssertEqual(rows, 407)
    }

    func testBuiltInsMatchTheCatalogFiles() throws {
        let folder = packageRoot.appendingPathComponent("catalog/mirrors")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }
        XCTAssertEqual(files.count, MirrorDefinition.builtIn.count)
        for file in files {
            let definition = try MirrorRegistry.load(folder.appendingPathComponent(file))
            XCTAssertEqual(file, definition.name + ".json")
            XCTAssertEqual(MirrorDefinition.builtIn.first { $0.name == definition.name }, definition, file)
        }
        XCTAssertEqual(MirrorDefinition.dryad.doi, "doi:10.7941/D1SP93")
        XCTAssertEqual(MirrorDefinition.studyMetadata.url(for: try RemotePath(MirrorDefinition.studyMetadata.metadataPath!)),
                       "https://raw.githubusercontent.com/ScottLabUCB/HRTEM-Generalization/HEAD/dataset_creation/Dataset_metadata.csv")
    }

    func testRegistryAddsListsOverridesAndRefuses() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let registry = MirrorRegistry(userFolder: folder.appendingPathComponent("mirrors"),
                                      environment: ["HRTEM_MIRROR_STUDY_METADATA_URL": "http://127.0.0.1:9/meta/"])
        try registry.add(MirrorDefinition(name: "lab", layout: .nersc, baseURL: "https://example.org/hrtem/"))
        let names = try registry.all().map(\.name)
        XCTAssertEqual(names, ["nersc", "dryad", "study-metadata", "study-models", "lab"])
        XCTAssertEqual(try registry.mirror(named: "lab").baseURL, "https://example.org/hrtem/")
        XCTAssertEqual(try registry.mirror(named: "study-metadata").baseURL, "http://127.0.0.1:9/meta/")
        XCTAssertEqual(try registry.mirror(named: "nersc").baseURL, MirrorDefinition.nersc.baseURL)

        XCTAssertThrowsError(try registry.add(MirrorDefinition(name: "nersc", layout: .http, baseURL: "https://x.org/"))) {
            XCTAssertTrue("\($0)".contains("HRTEM_MIRROR_NERSC_URL"), "\($0)")
        }
        XCTAssertThrowsError(try registry.add(MirrorDefinition(name: "Bad Name", layout: .http, baseURL: "https://x.org/")))
        XCTAssertThrowsError(try registry.add(MirrorDefinition(name: "ftp", layout: .http, baseURL: "ftp://x.org/"))) {
            XCTAssertTrue("\($0)".contains("not an http(s) URL"), "\($0)")
        }
        XCTAssertThrowsError(try registry.mirror(named: "nope")) {
            XCTAssertTrue("\($0)".contains("known mirrors: nersc, dryad, study-metadata, study-models, lab"), "\($0)")
        }
        // A broken user file is named in the error rather than ignored.
        try Data("{not json".utf8).write(to: folder.appendingPathComponent("mirrors/broken.json"))
        XCTAssertThrowsError(try registry.all()) { XCTAssertTrue("\($0)".contains("broken.json"), "\($0)") }
    }

    func testRemotePathRefusesEscapes() {
        for bad in ["../etc/passwd", "a/../../b", "/etc/passwd", "a//b", "a/./b", "", "a/", "C:\\x", "a\\..\\b", "a\u{0}b"] {
            XCTAssertThrowsError(try RemotePath(bad), bad) { error in
                guard case MirrorError.unsafePath = error else { return XCTFail("\(error)") }
            }
        }
        XCTAssertEqual(try RemotePath("a b/c..d/e.png").segments, ["a b", "c..d", "e.png"])
    }

    func testSafeLocationStaysInsideTheRootEvenThroughSymlinks() throws {
        let root = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let outside = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: outside) }
        XCTAssertEqual(try safeLocation(of: RemotePath("a/b.png"), inside: root).path, root.appendingPathComponent("a/b.png").path)
        try FileManager.default.createSymbolicLink(at: root.appendingPathComponent("link"), withDestinationURL: outside)
        XCTAssertThrowsError(try safeLocation(of: RemotePath("link/x.png"), inside: root))
    }

    func testRetryScheduleIsSeededExponentialAndHonoursRetryAfter() {
        let policy = RetryPolicy(maxAttempts: 6, baseDelay: 1, maxDelay: 8, maxRetryAfter: 30, seed: 7)
        let delays = (1...6).map { policy.delay(afterAttempt: $0, streamIndex: 42, retryAfter: nil) }
        XCTAssertEqual(delays, (1...6).map { policy.delay(afterAttempt: $0, streamIndex: 42, retryAfter: nil) })
        for (i, delay) in delays.enumerated() {
            let cap = min(8, pow(2, Double(i)))
            XCTAssertGreaterThanOrEqual(delay, cap * 0.5)
            XCTAssertLessThan(delay, cap)
        }
        XCTAssertNotEqual(delays, (1...6).map { policy.delay(afterAttempt: $0, streamIndex: 43, retryAfter: nil) })
        XCTAssertEqual(policy.delay(afterAttempt: 1, streamIndex: 1, retryAfter: 20), 20)
        XCTAssertEqual(policy.delay(afterAttempt: 1, streamIndex: 1, retryAfter: 500), 30)
        XCTAssertEqual(parseRetryAfter("120"), 120)
        let now = Date(timeIntervalSince1970: 1_445_412_480) // Wed, 21 Oct 2015 07:28:00 GMT
        XCTAssertEqual(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now: now), 30)
        XCTAssertNil(parseRetryAfter("soon"))
        XCTAssertTrue(RetryPolicy.isRetryable(httpStatus: 503))
        XCTAssertTrue(RetryPolicy.isRetryable(httpStatus: 429))
        XCTAssertFalse(RetryPolicy.isRetryable(httpStatus: 404))
    }

    func testTokenBucketAllowsBurstThenPaces() {
        let now = Locked(0.0)
        let limiter = RateLimiter(ratePerSecond: 0.5, burst: 2, clock: { now.value }, sleep: { seconds in now.withLock { $0 += seconds } })
        XCTAssertEqual(limiter.acquire(), 0)
        XCTAssertEqual(limiter.acquire(), 0)
        XCTAssertEqual(limiter.acquire(), 2, accuracy: 1e-9)
        XCTAssertEqual(limiter.acquire(), 2, accuracy: 1e-9)
        now.withLock { $0 += 10 } // idle time refills up to the burst only
        XCTAssertEqual(limiter.acquire(), 0)
        XCTAssertEqual(limiter.acquire(), 0)
        XCTAssertEqual(limiter.acquire(), 2, accuracy: 1e-9)
        // 30 a minute, one at a time: 10 requests take 18 s after the first.
        let dryadNow = Locked(0.0)
        let dryad = RateLimiter(ratePerSecond: 30.0 / 60, burst: 1, clock: { dryadNow.value },
                                sleep: { seconds in dryadNow.withLock { $0 += seconds } })
        for _ in 0..<10 { dryad.acquire() }
        XCTAssertEqual(dryadNow.value, 18, accuracy: 1e-6)
    }
}
