import Foundation
import TestSupport
import XCTest

/// `hrtem matrix --compare-folds study,frame,session` on synthetic frames of three sessions (the
/// session rule needs a session each for test, validation and training): one dataset recipe
/// built under each fold rule, a matrix for each, and the diagonal's change.
final class FoldComparisonCommandTests: XCTestCase {
    func testTheDiagonalUnderEachFoldRule() throws {
        let folder = try makeTemporaryFolder("hrtem-compare-folds")
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = folder.appendingPathComponent("data").path
        func hrtem(_ arguments: [String]) throws -> CommandResult {
            let result = try runHrtem(arguments + ["--data", data], in: folder)
            XCTAssertEqual(result.status, 0, "hrtem \(arguments.joined(separator: " ")):\n\(result.standardError)")
            return result
        }
        let frames = folder.appendingPathComponent("frames")
        let synth = try runHrtem(["synth", frames.path, "--sessions", "3", "--frames-per-condition", "2", "--size", "128",
                                  "--dose", "884", "--pixel-scale", "0.02", "--particle-size", "5", "--material", "Au", "--seed", "4"])
        XCTAssertEqual(synth.status, 0, synth.standardError)
        _ = try hrtem(["import-metadata", frames.appendingPathComponent("Dataset_metadata.csv").path])
        _ = try hrtem(["ingest", frames.path])
        _ = try hrtem(["dataset", "create", "hd", "--where", "dose ~ 884 +- 20", "--patch", "32", "--stride", "32",
                       "--min-particle-pixels", "50", "--folds", "3"])
        let run = try hrtem(["matrix", "--datasets", "hd", "--compare-folds", "study,frame,session", "--folds", "3",
                             "--epochs", "1", "--batch", "8", "--widths", "4", "--bottleneck", "8", "--threads", "1",
                             "--no-rotate", "--out", "compare"])
        XCTAssertTrue(run.standardOutput.contains("by session"), run.standardOutput)
        let compare = folder.appendingPathComponent("compare")
        for rule in ["study", "frame", "session"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: compare.appendingPathComponent("\(rule)/report.html").path), rule)
        }
        let csv = try String(contentsOf: compare.appendingPathComponent("fold-comparison.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(rows.first, ["dataset", "rule", "hard_dice_mean", "change_vs_study"])
        XCTAssertEqual(rows.dropFirst().map { $0[1] }, ["study", "frame", "session"])
        let values = try rows.dropFirst().map { try XCTUnwrap(Double($0[2]), "\($0)") }
        let changes = try rows.dropFirst().map { try XCTUnwrap(Double($0[3]), "\($0)") }
        for (value, change) in zip(values, changes) {
            XCTAssertEqual(change, value - values[0], accuracy: 1e-12)
        }
        // The three versions differ only in their folds: the frame and session rules keep each
        // frame's patches on one side of every split.
        let matrix = try jsonObject(compare.appendingPathComponent("session/matrix.json"))
        let datasets = try XCTUnwrap(matrix["datasets"] as? [[String: Any]])
        XCTAssertEqual(datasets.first?["name"] as? String, "hd-by-session")

        let bad = try runHrtem(["matrix", "--datasets", "hd", "--compare-folds", "study,patch", "--data", data], in: folder)
        XCTAssertEqual(bad.status, 64, bad.standardError)
        XCTAssertTrue(bad.standardError.contains("'patch' is not a fold rule"), bad.standardError)
    }
}
