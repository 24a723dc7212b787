import Foundation
import Micrograph
import XCTest

/// The package root, found from this file's location (Sources/TestSupport/TestSupport.swift).
public let packageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// `../shared/reference` beside the project, or nil when it is absent (tests then skip with a
/// message that says so; the files are never copied into the repository).
public var referenceFolder: URL? {
    let url = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/reference")
    return FileManager.default.fileExists(atPath: url.path) ? url : nil
}

/// The message a test skips with when `../shared/reference` is absent.
public let referenceMissingMessage = "../shared/reference is absent: reference-data checks skipped"

/// A fresh empty folder under the system temporary folder; removed by `removeTemporaryFolder`.
public func makeTemporaryFolder(_ label: String = "hrtem-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("\(label)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The folder that holds the built products (the test bundle sits beside the `hrtem` binary).
public var productsFolder: URL {
    #if os(macOS)
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        return bundle.bundleURL.deletingLastPathComponent()
    }
    fatalError("couldn't find the products directory")
    #else
    return Bundle.main.bundleURL
    #endif
}

/// What a run of the built `hrtem` binary printed and how it exited.
public struct CommandResult {
    public var status: Int32
    public var standardOutput: String
    public var standardError: String
}

/// Runs the built `hrtem` binary with `arguments`, in `directory`, with extra environment.
public func runHrtem(_ arguments: [String], in directory: URL? = nil,
                     environment: [String: String] = [:]) throws -> CommandResult {
    try runProcess(productsFolder.appendingPathComponent("hrtem"), arguments, in: directory, environment: environment)
}

/// Runs any program and collects its output (both pipes drained concurrently, so a chatty
/// program cannot block on a full pipe).
public func runProcess(_ executable: URL, _ arguments: [String], in directory: URL? = nil,
                       environment: [String: String] = [:]) throws -> CommandResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let outPipe = Pipe(), errPipe = Pipe()
    process.standardOutput = outPipe
    process.standardError = errPipe
    try process.run()
    let standardOutput = Locked(Data())
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        let data = outPipe.fileHandleForReading.readDataToEndOfFile()
        standardOutput.withLock { $0 = data }
        group.leave()
    }
    let errData = errPipe.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let outData = standardOutput.value
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus,
                         standardOutput: String(decoding: outData, as: UTF8.self),
                         standardError: String(decoding: errData, as: UTF8.self))
}

/// Whether `python3 -c "import <module>"` succeeds here (used to skip peer comparisons).
public func pythonCanImport(_ module: String, python: String = peerPython) -> Bool {
    guard let result = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), [python, "-c", "import \(module)"]) else {
        return false
    }
    return result.status == 0
}

/// The Python that runs peer scripts (NumPy, scikit-image, ncempy, PyTorch): `$HRTEM_PYTHON`,
/// else the project's `.venv` made by `make peers`, else `python3` on the PATH.
public var peerPython: String {
    if let explicit = ProcessInfo.processInfo.environment["HRTEM_PYTHON"], !explicit.isEmpty { return explicit }
    let venv = packageRoot.appendingPathComponent(".venv/bin/python3")
    if FileManager.default.isExecutableFile(atPath: venv.path) { return venv.path }
    return "python3"
}

/// A Python that imports torch: `$HRTEM_TORCH_PYTHON`, else `peerPython`, or nil when neither
/// does (PyTorch comparisons then skip with a message saying so).
public var torchPeerPython: String? {
    [ProcessInfo.processInfo.environment["HRTEM_TORCH_PYTHON"], peerPython].compactMap { $0 }
        .filter { !$0.isEmpty }.first { pythonCanImport("torch", python: $0) }
}

/// The input of the study's forward-pass oracle (`study_unet_parity.json`): the formula image,
/// standardized with the n-1 deviation in float64 and cast to float32, row-major `size x size`,
/// and the disc it hides as 0/1 labels.
public func studyParityInput(size: Int) -> (values: [Float], disc: [UInt8]) {
    let s = Double(size)
    var values = [Double](repeating: 0, count: size * size)
    var disc = [UInt8](repeating: 0, count: size * size)
    for i in 0..<size {
        for j in 0..<size {
            let di = Double(i), dj = Double(j)
            let r2 = (di - 0.4 * s) * (di - 0.4 * s) + (dj - 0.55 * s) * (dj - 0.55 * s)
            let particle: Double = r2 < (0.18 * s) * (0.18 * s) ? 1 : 0
            values[i * size + j] = 0.3 * sin(0.11 * di + 0.05 * dj) * cos(0.07 * dj)
                + particle * 1.2 * sin(2 * .pi * (di + 0.5 * dj) / 12) + 0.2 * cos(0.013 * di * dj / s)
            disc[i * size + j] = UInt8(particle)
        }
    }
    let mean = values.reduce(0, +) / Double(values.count)
    let deviation = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot()
    return (values.map { Float(($0 - mean) / deviation) }, disc)
}

/// Checks a network's logits on `studyParityInput(size:)` against the oracle
/// (`study_unet_parity.json`): the logits at the listed pixels within 1e-3 and each class's
/// mean within 1e-4. `planes[k]` is class k's row-major plane.
public func assertMatchesStudyParityOracle(_ planes: [[Float]], oracle: [String: Any], size: Int,
                                           file: StaticString = #filePath, line: UInt = #line) {
    for entry in oracle["logits_at"] as! [[String: Any]] {
        let row = entry["row"] as! Int, column = entry["col"] as! Int
        let expected = entry["logits"] as! [Double]
        for k in 0..<2 {
            XCTAssertEqual(Double(planes[k][row * size + column]), expected[k], accuracy: 1e-3,
                           "logit \(k) at (\(row), \(column))", file: file, line: line)
        }
    }
    let means = oracle["logits_mean"] as! [Double]
    for k in 0..<2 {
        let sum = planes[k].reduce(0) { $0 + Double($1) }
        XCTAssertEqual(sum / Double(size * size), means[k], accuracy: 1e-4, "mean logit \(k)", file: file, line: line)
    }
}
