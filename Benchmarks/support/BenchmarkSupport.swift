import Foundation

/// Peak resident memory of this process so far (VmHWM), MiB; 0 where /proc is absent.
public func peakResidentMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }
    return 0
}

/// Processor seconds (user + system, every thread) this process has used.
public func processorSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// The host's load averages, as /proc/loadavg gives them ("?" where it is absent).
public var hostLoadAverage: String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

/// Runs `python args...` through /usr/bin/env; returns its status and standard output
/// (standard error is discarded).
public func runPython(_ python: String, _ arguments: [String]) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [python] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return (-1, "") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The first of $HRTEM_TORCH_PYTHON, $HRTEM_PYTHON, ./.venv/bin/python3 and python3 that
/// imports torch, or nil.
public func torchPython() -> String? {
    let environment = ProcessInfo.processInfo.environment
    let candidates = [environment["HRTEM_TORCH_PYTHON"], environment["HRTEM_PYTHON"], ".venv/bin/python3", "python3"].compactMap { $0 }
    return candidates.first { runPython($0, ["-c", "import torch"]).status == 0 }
}
