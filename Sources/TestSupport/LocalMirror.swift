import Foundation
import Micrograph
import XCTest

/// A local HTTP mirror (Benchmarks/peers/mirror_server.py) on 127.0.0.1 at a free port,
/// serving `root`, with the faults given, and answering 401 to requests without
/// `Authorization: Bearer <bearer>` when `bearer` is set; stopped by `stop()` (and by itself
/// after `lifetime` seconds or when this process is gone).
public final class LocalMirror {
    public let root: URL
    public let port: Int
    public let logFile: URL
    private let process: Process

    public var baseURL: String { "http://127.0.0.1:\(port)/" }

    public init(root: URL, faults: [String: [[String: Any]]] = [:], bearer: String? = nil, lifetime: Double = 120) throws {
        self.root = root
        // A proxy set for the machine (CI) must not capture requests to the local mirror.
        for variable in ["no_proxy", "NO_PROXY"] {
            let current = ProcessInfo.processInfo.environment[variable] ?? ""
            if !current.contains("127.0.0.1") {
                setenv(variable, current.isEmpty ? "127.0.0.1,localhost" : current + ",127.0.0.1,localhost", 1)
            }
        }
        let work = root.deletingLastPathComponent()
        logFile = work.appendingPathComponent("server-\(UUID().uuidString.prefix(6)).log")
        let faultsFile = work.appendingPathComponent("faults-\(UUID().uuidString.prefix(6)).json")
        try JSONSerialization.data(withJSONObject: faults).write(to: faultsFile)
        let script = packageRoot.appendingPathComponent("Benchmarks/peers/mirror_server.py")
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, "--root", root.path, "--faults", faultsFile.path,
                             "--log", logFile.path, "--lifetime", String(lifetime)]
            + (bearer.map { ["--bearer", $0] } ?? [])
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        // The first line is "PORT <n>"; read byte by byte so nothing after it is consumed.
        var line = Data()
        let handle = pipe.fileHandleForReading
        while true {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("PORT "), let port = Int(text.dropFirst(5)) else {
            process.terminate()
            throw XCTSkip("local test mirror did not start (python3 missing?): '\(text)'")
        }
        self.port = port
    }

    public func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    public struct LoggedRequest: Decodable {
        public var path: String
        public var range: String?
        public var status: Int
        public var sent: Int
        public var proxied: Bool?
        public var agent: String?
        public var authorization: String?
        /// Arrival order (1-based).
        public var seq: Int?
    }

    /// The requests the server has answered so far, in the order they arrived.
    ///
    /// The server logs a request once its reply has gone out, so a client that has just read a
    /// reply can get here before that line is written, and a slow reply is logged after a later
    /// quick one. Every request logs a "begun" line with its arrival number before any byte of
    /// its reply, so this waits (up to `timeout` seconds, for a request still being answered)
    /// until each begun request has its line, and orders them by arrival.
    public func requests(timeout: Double = 5) -> [LoggedRequest] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let lines = ((try? String(contentsOf: logFile, encoding: .utf8)) ?? "").split(separator: "\n")
            let answered = lines.compactMap { try? JSONDecoder().decode(LoggedRequest.self, from: Data($0.utf8)) }
            let begun = lines.filter { $0.hasPrefix(#"{"begun""#) }.count
            if answered.count >= begun || Date() >= deadline {
                return answered.enumerated().sorted { ($0.element.seq ?? 0, $0.offset) < ($1.element.seq ?? 0, $1.offset) }.map(\.element)
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }
}

/// Deterministic test content (same bytes for the same seed).
public func testBytes(count: Int, seed: UInt64) -> Data {
    var random = SplitMix64(seed: seed)
    var data = Data(count: count)
    data.withUnsafeMutableBytes { raw in
        let bytes = raw.bindMemory(to: UInt8.self)
        var word: UInt64 = 0
        for i in 0..<count {
            if i % 8 == 0 { word = random.next() }
            bytes[i] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(i % 8)))
        }
    }
    return data
}
