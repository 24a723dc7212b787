import Foundation
import Micrograph
import TestSupport
import XCTest

/// `hrtem mirror ...` end to end against a local mirror.
final class MirrorCommandTests: XCTestCase {
    var work: URL!
    var tree: URL!
    var dataFolder: URL { work.appendingPathComponent("data") }
    var servers: [LocalMirror] = []
    let relative = "2022_02_02 Ag/5 nm/20220202_Ag_UTC_330kx_2650e_0p1596s_01.dm3"

    override func setUpWithError() throws {
        work = try makeTemporaryFolder("hrtem-cli-mirror")
        tree = work.appendingPathComponent("tree")
    }

    override func tearDown() {
        servers.forEach { $0.stop() }
        try? FileManager.default.removeItem(at: work)
    }

    func put(_ data: Data, at path: String) throws {
        let url = tree.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
    }

    func serve(_ faults: [String: [[String: Any]]] = [:]) throws -> LocalMirror {
        let server = try LocalMirror(root: tree, faults: faults)
        servers.append(server)
        return server
    }

    func hrtem(_ arguments: [String], mirror: LocalMirror? = nil) throws -> CommandResult {
        var environment = ["HRTEM_HOME": dataFolder.path]
        if let mirror { environment["HRTEM_MIRROR_NERSC_URL"] = mirror.baseURL }
        return try runHrtem(arguments, environment: environment)
    }

    func testListAddAndRefuse() throws {
        let list = try hrtem(["mirror", "list"])
        XCTAssertEqual(list.status, 0, list.standardError)
        XCTAssertTrue(list.standardOutput.contains("nersc\tnersc\thttps://portal.nersc.gov/project/m3795/hrtem-generalization/"))
        XCTAssertTrue(list.standardOutput.contains("dryad\tdryad\thttps://datadryad.org/api/v2/\tdoi:10.7941/D1SP93"))
        XCTAssertTrue(list.standardOutput.contains("study-metadata"))
        let add = try hrtem(["mirror", "add", "lab", "https://data.example.org/hrtem/", "--layout", "nersc"])
        XCTAssertEqual(add.status, 0, add.standardError)
        XCTAssertTrue(try hrtem(["mirror", "list"]).standardOutput.contains("lab\tnersc\thttps://data.example.org/hrtem/"))
        let clash = try hrtem(["mirror", "add", "nersc", "https://x.org/"])
        XCTAssertNotEqual(clash.status, 0)
        XCTAssertTrue(clash.standardError.contains("HRTEM_MIRROR_NERSC_URL"), clash.standardError)
        let badLayout = try hrtem(["mirror", "add", "x", "https://x.org/", "--layout", "dryad"])
        XCTAssertNotEqual(badLayout.status, 0)
    }

    func testGetStoresVerifiedFileAndReportsFailures() throws {
        let content = testBytes(count: 200_000, seed: 3)
        try put(content, at: relative)
        let server = try serve()
        let got = try hrtem(["mirror", "get", "nersc", relative, "--jobs", "2"], mirror: server)
        XCTAssertEqual(got.status, 0, got.standardError)
        let fields = got.standardOutput.split(separator: "\t").map(String.init)
        XCTAssertEqual(fields.first, sha256Hex(content))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: fields[2])), content)
        XCTAssertTrue(fields[2].hasPrefix(dataFolder.appendingPathComponent("store").path))
        XCTAssertTrue(got.standardError.contains("fetched 1, skipped 0, failed 0"), got.standardError)
        // With the digest known the second run does not touch the network.
        let again = try hrtem(["mirror", "get", "nersc", relative, "--sha256", sha256Hex(content)], mirror: server)
        XCTAssertTrue(again.standardError.contains("fetched 0, skipped 1, failed 0"), again.standardError)
        // A missing file: non-zero exit and a reason.
        let missing = try hrtem(["mirror", "get", "nersc", "nowhere/x.dm3", relative], mirror: server)
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.standardError.contains("failed 1"), missing.standardError)
        XCTAssertTrue(missing.standardError.contains("HTTP 404"), missing.standardError)
        // An unsafe path is refused before any request.
        let unsafe = try hrtem(["mirror", "get", "nersc", "../../etc/passwd"], mirror: server)
        XCTAssertNotEqual(unsafe.status, 0)
        XCTAssertTrue(unsafe.standardError.contains("unsafe path"), unsafe.standardError)
    }

    /// SIGKILL a fetch mid-download, run it again: it resumes (fewer bytes the second time, as
    /// the server's log shows) and ends with a verified file.
    func testKilledFetchResumesOnRerun() throws {
        let size = 3_000_000
        let content = testBytes(count: size, seed: 8)
        try put(content, at: relative)
        // 1 MB/s: the first run is still downloading when it is killed.
        // Only the first request is slow; the partial file is named after the URL, so the rerun
        // must go to the same mirror to resume.
        let server = try serve([relative: [["kind": "trickle", "after": 0, "bytes_per_second": 1_000_000, "times": 1]]])
        let process = Process()
        process.executableURL = productsFolder.appendingPathComponent("hrtem")
        process.arguments = ["mirror", "get", "nersc", relative, "--sha256", sha256Hex(content)]
        var environment = ProcessInfo.processInfo.environment
        environment["HRTEM_HOME"] = dataFolder.path
        environment["HRTEM_MIRROR_NERSC_URL"] = server.baseURL
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let tmp = dataFolder.appendingPathComponent("tmp")
        var partialSize = 0
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && partialSize < 500_000 {
            Thread.sleep(forTimeInterval: 0.05)
            let parts = (try? FileManager.default.contentsOfDirectory(at: tmp, includingPropertiesForKeys: [.fileSizeKey])) ?? []
            partialSize = parts.compactMap { try? $0.resourceValues(forKeys: [.fileSizeKey]).fileSize }.max() ?? 0
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        XCTAssertGreaterThanOrEqual(partialSize, 500_000, "the first run got part of the file")
        let storeFolder = dataFolder.appendingPathComponent("store")
        let finalFiles = ((try? FileManager.default.subpathsOfDirectory(atPath: storeFolder.path)) ?? [])
            .filter { $0.split(separator: "/").count == 2 }
        XCTAssertEqual(finalFiles, [], "nothing under a final name after the kill")
        let rerun = try hrtem(["mirror", "get", "nersc", relative, "--sha256", sha256Hex(content)], mirror: server)
        XCTAssertEqual(rerun.status, 0, rerun.standardError)
        XCTAssertTrue(rerun.standardError.contains("resumed from byte"), rerun.standardError)
        let requests = server.requests()
        // The first run's request is logged when the server notices the dead connection, which
        // may come after the rerun's: find the rerun's by its Range header.
        XCTAssertEqual(requests.filter { $0.range != nil }.count, 1, "one resumed request: \(requests)")
        let second = try XCTUnwrap(requests.first { $0.range != nil })
        let resumedAt = try XCTUnwrap(Int(second.range?.dropFirst("bytes=".count).dropLast() ?? ""), "\(second)")
        XCTAssertGreaterThanOrEqual(resumedAt, partialSize)
        XCTAssertEqual(second.status, 206)
        XCTAssertEqual(second.sent, size - resumedAt)
        XCTAssertLessThan(second.sent, size, "the second run transferred fewer bytes than the file")
        let stored = dataFolder.appendingPathComponent("store/\(sha256Hex(content).prefix(2))/\(sha256Hex(content))")
        XCTAssertEqual(try Data(contentsOf: stored), content)
    }

    func testProxyFromTheEnvironmentIsUsed() throws {
        let content = testBytes(count: 10_000, seed: 4)
        try put(content, at: relative)
        let proxy = try serve()
        // The mirror's host does not exist: only a proxy can answer for it.
        let result = try runHrtem(["mirror", "get", "nersc", relative, "--attempts", "1"],
                                  environment: ["HRTEM_HOME": dataFolder.path,
                                                "HRTEM_MIRROR_NERSC_URL": "http://mirror.hrtem-test.invalid/",
                                                "http_proxy": proxy.baseURL, "no_proxy": "", "NO_PROXY": ""])
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertTrue(result.standardOutput.hasPrefix(sha256Hex(content)), result.standardOutput)
        XCTAssertEqual(proxy.requests().map(\.proxied), [true])
        XCTAssertEqual(proxy.requests().first?.path, relative)
    }
}
