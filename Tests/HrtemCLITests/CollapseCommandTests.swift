import Foundation
import Micrograph
import Preprocessing
import TestSupport
import XCTest

/// Discs away from the edges, 24 patches of 16 x 16, two folds with the study's seeds 962 and 1662.
func makeDiscVersion(in folder: URL) throws {
    try writeDiscVersionFolder(at: folder, name: "discs", versionId: "discs-collapse", count: 24, side: 16, margin: 4, seed: 5,
                           folds: FoldPlan(k: 2, rule: .study, folds: [
                               Fold(fold: 0, seed: 962, train: Array(8..<24), validation: [4, 5, 6, 7], test: [0, 1, 2, 3]),
                               Fold(fold: 1, seed: 1662, train: Array(0..<8) + Array(16..<24), validation: [12, 13, 14, 15],
                                    test: [8, 9, 10, 11]),
                           ]))
}

/// The JSON object in `url`.
func jsonObject(_ url: URL) throws -> [String: Any] {
    try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], url.path)
}

/// A deliberately dead start (`--debug-dead-start-seeds`: the final bias saturating substrate) is
/// detected and reported by `hrtem matrix` (card, text table, matrix.json, report), left out of
/// its cell; with `--on-collapse retry` it is replaced by a model from the next seed that learns.
final class CollapseCommandTests: XCTestCase {
    func testDeadStartIsReportedAndRetriedWithTheNextSeed() throws {
        let folder = try makeTemporaryFolder("hrtem-collapse")
        defer { try? FileManager.default.removeItem(at: folder) }
        let version = folder.appendingPathComponent("version")
        try FileManager.default.createDirectory(at: version, withIntermediateDirectories: true)
        try makeDiscVersion(in: version)
        let common = ["matrix", "--datasets", version.path, "--folds", "2", "--epochs", "3", "--batch", "8", "--lr", "0.01",
                      "--widths", "4", "--bottleneck", "8", "--threads", "1", "--no-rotate", "--debug-dead-start-seeds", "962"]

        // Reported: fold 0's card says collapsed, the cell leaves it out (fold 1 alone) and says so.
        let reportData = folder.appendingPathComponent("data-report").path
        let reported = try runHrtem(common + ["--out", "report", "--data", reportData], in: folder)
        XCTAssertEqual(reported.status, 0, reported.standardError)
        XCTAssertTrue(reported.standardOutput.contains("†"), reported.standardOutput)
        XCTAssertTrue(reported.standardOutput.contains("collapsed"), reported.standardOutput)
        let report = folder.appendingPathComponent("report")
        let matrix = try jsonObject(report.appendingPathComponent("matrix.json"))
        let cell = try XCTUnwrap((matrix["cells"] as? [[String: Any]])?.first)
        XCTAssertEqual(cell["collapsedFolds"] as? [Int], [0])
        XCTAssertEqual(((cell["hardDice"] as? [String: Any])?["values"] as? [Double])?.count, 1,
                       "a collapsed model is not averaged into its cell")
        let models = try XCTUnwrap(matrix["models"] as? [[String: Any]])
        let deadCard = try XCTUnwrap(models.first?["card"] as? [String: Any])
        XCTAssertEqual((deadCard["seed"] as? NSNumber)?.uint64Value, 962)
        let collapse = try XCTUnwrap(deadCard["collapse"] as? [String: Any], "the card marks the collapse")
        XCTAssertTrue((collapse["reason"] as? String ?? "").contains("substrate"), "\(collapse)")
        let csv = try String(contentsOf: report.appendingPathComponent("matrix.csv"), encoding: .utf8)
        XCTAssertTrue(csv.split(separator: "\n").first?.hasSuffix("collapsed_folds") == true, csv)
        XCTAssertTrue(csv.split(separator: "\n").dropFirst().first?.hasSuffix(",0") == true, csv)
        let html = try String(contentsOf: report.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("collapsed and are left out"), "the report warns")
        XCTAssertTrue(html.contains("Validation curves") && html.contains("<polyline"), "the report draws every model's curve")

        // Retried: the next seed of the recorded sequence learns; the dead attempt is kept aside.
        let retryData = folder.appendingPathComponent("data-retry").path
        let retried = try runHrtem(common + ["--on-collapse", "retry", "--collapse-retries", "2", "--out", "retry",
                                             "--data", retryData], in: folder)
        XCTAssertEqual(retried.status, 0, retried.standardError)
        XCTAssertFalse(retried.standardOutput.contains("†"), retried.standardOutput)
        let retry = folder.appendingPathComponent("retry")
        let retriedMatrix = try jsonObject(retry.appendingPathComponent("matrix.json"))
        let retriedCell = try XCTUnwrap((retriedMatrix["cells"] as? [[String: Any]])?.first)
        let dice = try XCTUnwrap((retriedCell["hardDice"] as? [String: Any])?["mean"] as? Double)
        XCTAssertGreaterThan(dice, 0.3, "the replacement learns")
        let card = try XCTUnwrap((retriedMatrix["models"] as? [[String: Any]])?.first?["card"] as? [String: Any])
        XCTAssertNil(card["collapse"])
        XCTAssertNil(retriedCell["collapsedFolds"])
        XCTAssertEqual(((retriedCell["hardDice"] as? [String: Any])?["values"] as? [Double])?.count, 2)
        let attempts = try XCTUnwrap(card["collapsedAttempts"] as? [[String: Any]])
        XCTAssertEqual(attempts.map { ($0["seed"] as? NSNumber)?.uint64Value }, [962])
        let seed = try XCTUnwrap((card["seed"] as? NSNumber)?.uint64Value)
        XCTAssertNotEqual(seed, 962)
        let configuration = try XCTUnwrap(card["configuration"] as? [String: Any])
        XCTAssertEqual(configuration["collapseRetries"] as? Int, 2, "the policy is recorded with the settings")
        let retriedHTML = try String(contentsOf: retry.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(retriedHTML.contains("962 (collapsed), \(seed)"), "the report shows the seeds tried")
        let modelFolder = URL(fileURLWithPath: try XCTUnwrap((retriedMatrix["models"] as? [[String: Any]])?.first?["folder"] as? String))
        XCTAssertTrue(FileManager.default.fileExists(atPath: modelFolder.appendingPathComponent("collapsed-seed-962/model.json").path))

        // Rerunning reuses the retried model: nothing trains again.
        let again = try runHrtem(common + ["--on-collapse", "retry", "--collapse-retries", "2", "--out", "retry",
                                           "--data", retryData], in: folder)
        XCTAssertEqual(again.status, 0, again.standardError)
        XCTAssertFalse(again.standardError.contains("] ran: train"), again.standardError)
    }
}
