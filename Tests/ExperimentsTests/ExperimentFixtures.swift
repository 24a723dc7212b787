import Experiments
import Foundation
import Segmentation
#if canImport(FoundationXML)
import FoundationXML
#endif
import TestSupport
import XCTest

/// Three small dataset versions as a plan sees them (no files needed by the simulated executor).
func sampleDatasets(folds: Int = 5) -> [DatasetVersionRef] {
    [
        DatasetVersionRef(id: "aaaa0001", name: "Au-2.2nm-884e", folder: "/shared/datasets/a", foldCount: folds,
                          metadata: [MetadataEntry("dose", "884 e/Å²"), MetadataEntry("pixel scale", "0.02 nm")]),
        DatasetVersionRef(id: "bbbb0002", name: "Au-2.2nm-80e", folder: "/shared/datasets/b", foldCount: folds,
                          metadata: [MetadataEntry("dose", "80 e/Å²"), MetadataEntry("pixel scale", "0.02 nm")]),
        DatasetVersionRef(id: "cccc0003", name: "Au <5nm> & \"friends\"", folder: "/shared/datasets/c", foldCount: folds,
                          metadata: [MetadataEntry("size", "5 nm")]),
    ]
}

func samplePlan(folds: Int = 5, executor: ExecutorKind = .simulated) throws -> MatrixPlan {
    let datasets = sampleDatasets(folds: folds)
    return try MatrixPlan(name: "test matrix", trainOn: datasets, testOn: datasets, folds: folds,
                          variants: [TrainingVariant(label: "default", settings: TrainingSettings(epochs: 3, batchSize: 4))],
                          executor: executor, commandLine: ["hrtem", "matrix", "--datasets", "a,b,c"])
}

/// Wraps the simulated executor: counts calls per unit and can fail on demand, to stand in for
/// a crash (every call after `failAfter` calls throws) or a broken unit.
final class CountingExecutor: UnitExecutor, @unchecked Sendable {
    // Sendable by hand: the counters change only under `lock`; `failAfter` and
    // `failingTrainUnits` are set before a runner starts and only read while it runs.
    let inner = SimulatedExecutor()
    private let lock = NSLock()
    private(set) var trainCalls: [String: Int] = [:]
    private(set) var evaluateCalls: [String: Int] = [:]
    var failAfter: Int?
    var failingTrainUnits: Set<String> = []
    private var calls = 0

    struct Interrupted: Error {}

    private func count(_ isTrain: Bool, _ id: String) throws {
        lock.lock(); defer { lock.unlock() }
        calls += 1
        if let failAfter, calls > failAfter { throw Interrupted() }
        if isTrain { trainCalls[id, default: 0] += 1 } else { evaluateCalls[id, default: 0] += 1 }
    }

    func train(_ unit: TrainUnit) throws -> ModelRef {
        if failingTrainUnits.contains(unit.id) { throw ExperimentError("simulated failure of \(unit.id)") }
        try count(true, unit.id)
        return try inner.train(unit)
    }

    func evaluate(_ unit: EvaluateUnit, model: ModelRef) throws -> Evaluation {
        try count(false, unit.id)
        return try inner.evaluate(unit, model: model)
    }

    var totalCalls: Int { lock.lock(); defer { lock.unlock() }; return trainCalls.values.reduce(0, +) + evaluateCalls.values.reduce(0, +) }
}

/// Parses XML with Foundation's parser; fails the test with the parser's error and line.
func assertWellFormedXML(_ text: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    let parser = XMLParser(data: Data(text.utf8))
    let ok = parser.parse()
    XCTAssertTrue(ok, "\(what) is not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?") at line \(parser.lineNumber)",
                  file: file, line: line)
}

/// Splits a simple CSV (RFC 4180 quoting) into rows of fields.
func parseCSV(_ text: String) -> [[String]] {
    var rows: [[String]] = []
    var row: [String] = []
    var field = ""
    var quoted = false
    var iterator = Array(text).makeIterator()
    var pending: Character? = nil
    while let character = pending ?? iterator.next() {
        pending = nil
        if quoted {
            if character == "\"" {
                if let next = iterator.next() {
                    if next == "\"" { field.append("\"") } else { quoted = false; pending = next }
                } else { quoted = false }
            } else { field.append(character) }
        } else if character == "\"" { quoted = true }
        else if character == "," { row.append(field); field = "" }
        else if character == "\n" { row.append(field); rows.append(row); row = []; field = "" }
        else { field.append(character) }
    }
    if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
    return rows
}

func temporaryFolder() throws -> URL { try makeTemporaryFolder("hrtem-exp") }
