#if canImport(Glibc)
import Foundation
import Glibc

/// A running `hrtem serve` (the built binary) on a loopback port the system chose, for tests
/// that talk HTTP to it as a browser or an attacker would. Stopped with SIGTERM by `stop()`.
public final class ServedCatalog: @unchecked Sendable {
    // Unchecked: `process` and the pipe are only touched by the test's own thread.
    public let port: Int
    public let dataFolder: URL
    private let process: Process
    private let output: Pipe

    /// Starts `hrtem serve --port 0 --data dataFolder` with `extraArguments` and waits (up to
    /// `timeout` seconds) for the line that names its address.
    public init(dataFolder: URL, extraArguments: [String] = [], timeout: TimeInterval = 30) throws {
        self.dataFolder = dataFolder
        process = Process()
        process.executableURL = productsFolder.appendingPathComponent("hrtem")
        process.arguments = ["serve", "--port", "0", "--data", dataFolder.path] + extraArguments
        output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var seen = Data()
        let deadline = Date().addingTimeInterval(timeout)
        var found: Int?
        let handle = output.fileHandleForReading
        while found == nil, Date() < deadline, process.isRunning {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            seen.append(chunk)
            let text = String(decoding: seen, as: UTF8.self)
            if let range = text.range(of: "hrtem serve: http://127.0.0.1:") {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                if text[range.upperBound...].dropFirst(digits.count).first == "/" { found = Int(digits) }
            }
        }
        guard let found else {
            process.terminate()
            throw NSError(domain: "ServedCatalog", code: 1,
                          userInfo: [NSLocalizedDescriptionKey: "hrtem serve did not start: \(String(decoding: seen, as: UTF8.self))"])
        }
        port = found
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    deinit { stop() }

    /// What a raw HTTP exchange returned: the status (0 when the server closed the connection
    /// without an answer), the header block and the body.
    public struct Answer {
        public var status: Int
        public var head: String
        public var body: Data
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// `GET target` with the target sent exactly as given (no normalization of `..` or
    /// percent escapes, unlike URL-based clients).
    public func get(_ target: String, headers: [String] = []) throws -> Answer {
        try send(Data(("GET \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
                       + headers.map { $0 + "\r\n" }.joined() + "Connection: close\r\n\r\n").utf8))
    }

    /// Sends raw bytes on a fresh connection and reads until the server closes it.
    public func send(_ request: Data, timeout: TimeInterval = 20) throws -> Answer {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketFD >= 0 else { throw POSIXError(.EIO) }
        defer { close(socketFD) }
        var seconds = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(socketFD, SOL_SOCKET, SO_RCVTIMEO, &seconds, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        request.withUnsafeBytes { bytes in
            var sent = 0
            while sent < bytes.count {
                let n = Glibc.send(socketFD, bytes.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
                if n <= 0 { break }
                sent += n
            }
        }
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(socketFD, &buffer, buffer.count, 0)
            if n <= 0 { break }
            received.append(contentsOf: buffer[0..<n])
        }
        guard let split = received.range(of: Data("\r\n\r\n".utf8)) else {
            return Answer(status: 0, head: String(decoding: received, as: UTF8.self), body: Data())
        }
        let head = String(decoding: received[..<split.lowerBound], as: UTF8.self)
        let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        var body = Data(received[split.upperBound...])
        if head.lowercased().contains("transfer-encoding: chunked") { body = Self.dechunked(body) }
        return Answer(status: status, head: head, body: body)
    }

    private static func dechunked(_ data: Data) -> Data {
        var out = Data(), rest = data[...]
        while let line = rest.range(of: Data("\r\n".utf8)) {
            let size = Int(String(decoding: rest[..<line.lowerBound], as: UTF8.self), radix: 16) ?? 0
            if size == 0 { break }
            let start = line.upperBound
            guard rest.distance(from: start, to: rest.endIndex) >= size else { break }
            let end = rest.index(start, offsetBy: size)
            out.append(rest[start..<end])
            rest = rest[rest.index(end, offsetBy: min(2, rest.distance(from: end, to: rest.endIndex)))...]
        }
        return out
    }
}
#endif
