import Foundation

/// What a fetch did, for the final summary: counts, bytes and the reason of every failure.
public struct FetchSummary: Sendable {
    public var fetched = 0
    public var skipped = 0
    public var failures: [(key: String, reason: String)] = []
    public var bytesTransferred: Int64 = 0
    public var bytesResumed: Int64 = 0
    public var seconds: Double = 0

    public init() {}

    public init(_ results: [DownloadResult], seconds: Double) {
        for result in results {
            bytesTransferred += result.bytesTransferred
            bytesResumed += result.resumedFrom
            switch result.outcome {
            case .fetched: fetched += 1
            case .skipped: skipped += 1
            case .failed(let error): failures.append((result.request.key, error.description))
            }
        }
        self.seconds = seconds
    }

    public var failed: Int { failures.count }
    public var succeeded: Bool { failures.isEmpty }

    /// `fetched 3, skipped 2, failed 1; 194.0 MB in 1.2 s (161.7 MB/s), 12.0 MB resumed`, then one
    /// line per failure with its reason.
    public var text: String {
        var line = "fetched \(fetched), skipped \(skipped), failed \(failed); \(formatBytes(bytesTransferred)) in "
            + String(format: "%.1f s", seconds)
        if seconds > 0 && bytesTransferred > 0 { line += " (\(formatBytes(Int64(Double(bytesTransferred) / seconds)))/s)" }
        if bytesResumed > 0 { line += ", resumed \(formatBytes(bytesResumed)) from earlier partial files" }
        for failure in failures { line += "\nfailed: \(failure.key): \(failure.reason)" }
        return line
    }
}

/// Decimal units, as network tools show rates: `12.3 MB`.
public func formatBytes(_ bytes: Int64) -> String {
    let value = Double(bytes)
    switch value {
    case ..<1e3: return "\(bytes) B"
    case ..<1e6: return String(format: "%.1f kB", value / 1e3)
    case ..<1e9: return String(format: "%.1f MB", value / 1e6)
    default: return String(format: "%.2f GB", value / 1e9)
    }
}

/// Shows a fetch as it goes: on a terminal, one line redrawn in place (files done/total, bytes,
/// rate, ETA); otherwise one plain log line per finished file. Thread-safe.
public final class ProgressDisplay: @unchecked Sendable {
    // Sendable by hand: output is written only under `lock`; `timer` is set by `start` and
    // cleared by `stop`, which the owner calls before and after the transfers it displays.
    private let downloader: Downloader
    private let totalFiles: Int
    private let expectedBytes: Int64?
    private let interactive: Bool
    private let write: @Sendable (String) -> Void
    private let lock = NSLock()
    private var timer: DispatchSourceTimer?
    private let started = monotonicSeconds()

    /// - Parameters:
    ///   - expectedBytes: total size when every size is known (enables the ETA).
    ///   - interactive: redraw a status line (a terminal) rather than print log lines.
    ///   - write: where text goes (standard error by default).
    public init(downloader: Downloader, totalFiles: Int, expectedBytes: Int64?, interactive: Bool,
                write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.downloader = downloader
        self.totalFiles = totalFiles
        self.expectedBytes = expectedBytes
        self.interactive = interactive
        self.write = write
    }

    /// Whether standard error is a terminal.
    public static var standardErrorIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }

    public func start() {
        guard interactive else { return }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global())
        timer.schedule(deadline: .now(), repeating: .milliseconds(250))
        timer.setEventHandler { [weak self] in self?.redraw() }
        timer.resume()
        self.timer = timer
    }

    /// The status line: `[3/10] 120.0 MB of 646.0 MB  85.2 MB/s  ETA 0:06`. Without published
    /// sizes the total is estimated from the `Content-Length` of the transfers started so far
    /// (frames of one study are all about the same size) and marked `~`.
    public func statusLine() -> String {
        let progress = downloader.progress
        let bytes = progress.bytesReceived
        let elapsed = max(1e-3, monotonicSeconds() - started)
        let rate = Double(bytes) / elapsed
        var total = expectedBytes
        var estimated = false
        let announced = progress.announced
        if total == nil, announced.files > 0 {
            total = Int64(Double(announced.bytes) / Double(announced.files) * Double(totalFiles))
            estimated = announced.files < totalFiles
        }
        var line = "[\(progress.filesDone)/\(totalFiles)] \(formatBytes(bytes))"
        if let total { line += " of \(estimated ? "~" : "")\(formatBytes(total))" }
        line += "  \(formatBytes(Int64(rate)))/s"
        if let total, rate > 0, total > bytes {
            let eta = Int(Double(total - bytes) / rate)
            line += String(format: "  ETA %d:%02d", eta / 60, eta % 60)
        }
        return line
    }

    private func redraw() {
        lock.lock(); defer { lock.unlock() }
        write("\r\u{1B}[K" + statusLine())
    }

    /// Call as each file finishes.
    public func finished(_ result: DownloadResult) {
        lock.lock(); defer { lock.unlock() }
        let done = downloader.progress.filesDone
        let prefix = interactive ? "\r\u{1B}[K" : ""
        switch result.outcome {
        case .fetched:
            var line = "fetched [\(done)/\(totalFiles)] \(result.request.key) (\(formatBytes(result.file?.size ?? 0))"
            if result.resumedFrom > 0 { line += ", resumed from byte \(result.resumedFrom)" }
            if result.attempts > 1 { line += ", \(result.attempts) attempts" }
            line += String(format: ", %.1f s, verified by %@)", result.seconds, result.verifiedBy)
            write(prefix + line + "\n")
        case .skipped:
            write(prefix + "skipped [\(done)/\(totalFiles)] \(result.request.key) (already stored)\n")
        case .failed(let error):
            write(prefix + "FAILED [\(done)/\(totalFiles)] \(error)\n")
        }
    }

    public func stop() {
        timer?.cancel()
        timer = nil
        if interactive { lock.lock(); write("\r\u{1B}[K"); lock.unlock() }
    }
}

extension Downloader {
    /// Fetches `requests` with a progress display (a status line on a terminal, log lines
    /// otherwise) and returns the results with their summary.
    public func fetchShowingProgress(_ requests: [DownloadRequest], interactive: Bool = ProgressDisplay.standardErrorIsTerminal,
                                     write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) })
        -> (results: [DownloadResult], summary: FetchSummary) {
        let sizes = requests.map(\.expected.size)
        let expectedBytes: Int64? = sizes.contains(where: { $0 == nil }) ? nil : sizes.reduce(0) { $0 + ($1 ?? 0) }
        let display = ProgressDisplay(downloader: self, totalFiles: requests.count, expectedBytes: expectedBytes,
                                      interactive: interactive, write: write)
        let started = monotonicSeconds()
        display.start()
        let results = download(requests) { display.finished($0) }
        display.stop()
        return (results, FetchSummary(results, seconds: monotonicSeconds() - started))
    }
}
