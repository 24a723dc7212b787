import Foundation
import TestSupport
import XCTest

/// `--loss` and `matrix --compare-losses` through the built binary: the objective is recorded in
/// the card and the plan, and several objectives are variants of one matrix.
final class LossCommandTests: XCTestCase {
    func testLossesAreRecordedAndComparedInOneMatrix() throws {
        let folder = try makeTemporaryFolder("hrtem-losses")
        defer { try? FileManager.default.removeItem(at: folder) }
        let version = folder.appendingPathComponent("version")
        try FileManager.default.createDirectory(at: version, withIntermediateDirectories: true)
        try makeDiscVersion(in: version)
        let data = folder.appendingPathComponent("data").path
        let small = ["--epochs", "1", "--batch", "8", "--widths", "4", "--bottleneck", "8", "--threads", "1", "--no-rotate"]

        let trained = try runHrtem(["train", version.path, "--fold", "0", "--loss", "weighted-cross-entropy",
                                    "--out", folder.appendingPathComponent("weighted").path, "--data", data] + small, in: folder)
        XCTAssertEqual(trained.status, 0, trained.standardError)
        let card = try jsonObject(folder.appendingPathComponent("weighted/model.json"))
        XCTAssertEqual((card["configuration"] as? [String: Any])?["loss"] as? String, "weighted-cross-entropy")

        let run = try runHrtem(["matrix", "--datasets", version.path, "--folds", "2", "--compare-losses", "cross-entropy,dice,focal",
                                "--out", "report", "--data", data] + small, in: folder)
        XCTAssertEqual(run.status, 0, run.standardError)
        let matrix = try jsonObject(folder.appendingPathComponent("report/matrix.json"))
        let variants = try XCTUnwrap(matrix["variants"] as? [[String: Any]])
        XCTAssertEqual(variants.map { $0["label"] as? String }, ["cross-entropy", "dice", "focal"])
        XCTAssertEqual(variants.map { ($0["settings"] as? [String: Any])?["loss"] as? String }, [nil, "dice", "focal"],
                       "the plan records each variant's objective (the study's as the default, absent)")
        XCTAssertEqual((matrix["cells"] as? [[String: Any]])?.count, 3, "one cell per objective")
        let models = try XCTUnwrap(matrix["models"] as? [[String: Any]])
        XCTAssertEqual(models.count, 6)
        XCTAssertEqual(Set(models.compactMap { (($0["card"] as? [String: Any])?["configuration"] as? [String: Any])?["loss"] as? String }),
                       ["dice", "focal"])

        let bad = try runHrtem(["matrix", "--datasets", version.path, "--folds", "2", "--compare-losses", "dice,hinge",
                                "--data", data], in: folder)
        XCTAssertEqual(bad.status, 64, bad.standardError)
        XCTAssertTrue(bad.standardError.contains("'hinge' is not a loss"), bad.standardError)
    }
}
