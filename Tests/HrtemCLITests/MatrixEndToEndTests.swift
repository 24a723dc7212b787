import Foundation
import TestSupport
import XCTest

/// The whole pipeline through the built binary with the real trainer, kept tiny: the project's
/// synthetic fixtures -> import-metadata -> ingest -> two dataset versions (884 and 80 e/A^2,
/// 32 px patches) -> a 2 x 2 matrix of 2 fold models trained for 1 epoch -> the report.
final class MatrixEndToEndTests: XCTestCase {
    func testFixturesToMatrixReport() throws {
        let fixtures = packageRoot.appendingPathComponent("Fixtures/synthetic")
        guard FileManager.default.fileExists(atPath: fixtures.appendingPathComponent("Dataset_metadata.csv").path) else {
            throw XCTSkip("Fixtures/synthetic is absent")
        }
        let folder = try makeTemporaryFolder("hrtem-matrix-e2e")
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = folder.appendingPathComponent("data").path
        func hrtem(_ arguments: [String]) throws -> CommandResult {
            let result = try runHrtem(arguments + ["--data", data], in: folder)
            XCTAssertEqual(result.status, 0, "hrtem \(arguments.joined(separator: " ")):\n\(result.standardError)")
            return result
        }
        _ = try hrtem(["import-metadata", fixtures.appendingPathComponent("Dataset_metadata.csv").path])
        _ = try hrtem(["ingest", fixtures.path])
        for dose in [884, 80] {
            _ = try hrtem(["dataset", "create", "dose-\(dose)", "--where", "dose ~ \(dose) +- 20 and pixel_scale = 0.02",
                           "--patch", "32", "--stride", "32", "--min-particle-pixels", "100", "--folds", "3"])
            _ = try hrtem(["dataset", "build", "dose-\(dose)"])
        }
        let arguments = ["matrix", "--datasets", "dose-884,dose-80", "--folds", "2", "--epochs", "1", "--batch", "8",
                         "--threads", "1", "--jobs", "2", "--name", "dose e2e", "--out", "report"]
        let run = try hrtem(arguments)
        XCTAssertTrue(run.standardOutput.contains("dose-884"), run.standardOutput)
        XCTAssertEqual(run.standardError.components(separatedBy: "] ran: train").count - 1, 4)
        XCTAssertEqual(run.standardError.components(separatedBy: "] ran: evaluate").count - 1, 8)

        let report = folder.appendingPathComponent("report")
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: report.appendingPathComponent("matrix.json"))) as? [String: Any])
        XCTAssertEqual(json["complete"] as? Bool, true)
        XCTAssertEqual(json["executor"] as? String, "trainer")
        let datasets = try XCTUnwrap(json["datasets"] as? [[String: Any]])
        XCTAssertEqual(datasets.map { $0["name"] as? String }, ["dose-884", "dose-80"])
        let metadata = try XCTUnwrap(datasets[0]["metadata"] as? [[String: String]])
        XCTAssertTrue(metadata.contains(["key": "dose", "value": "884 e/Å²"]), "\(metadata)")
        let cells = try XCTUnwrap(json["cells"] as? [[String: Any]])
        XCTAssertEqual(cells.count, 4)
        for cell in cells {
            let folds = try XCTUnwrap(cell["folds"] as? [[String: Any]])
            XCTAssertEqual(folds.count, 2)
            for fold in folds {
                let metrics = try XCTUnwrap(fold["metrics"] as? [String: Any])
                for key in ["hardDice", "softDice", "falsePositiveRate", "falseNegativeRate"] {
                    let value = try XCTUnwrap(metrics[key] as? Double)
                    XCTAssertTrue((0...1).contains(value), "\(key) = \(value)")
                }
                XCTAssertEqual((metrics["patches"] as? Int ?? 0) % 8, 0, "dihedral x8")
            }
        }
        for name in ["matrix.csv", "heatmap.svg", "segmentation-bias.svg", "cells/dose-884__on__dose-80.csv"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: report.appendingPathComponent(name).path), name)
        }
        let html = try String(contentsOf: report.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("data:image/png;base64,"), "sample overlays are inline")
        XCTAssertTrue(html.contains("hrtem matrix --datasets dose-884,dose-80"))
        let csv = try String(contentsOf: report.appendingPathComponent("matrix.csv"), encoding: .utf8)

        // Rerun: nothing is trained or evaluated again, the numbers are the same.
        let again = try hrtem(arguments)
        XCTAssertFalse(again.standardError.contains("] ran: "), again.standardError)
        XCTAssertEqual(try String(contentsOf: report.appendingPathComponent("matrix.csv"), encoding: .utf8), csv)

        // A unit trained beside another (--jobs 2) gets the bytes `hrtem train` gives it alone:
        // each network runs with its own compute settings.
        let models = URL(fileURLWithPath: data).appendingPathComponent("models")
        let unit = try XCTUnwrap(try FileManager.default.contentsOfDirectory(at: models, includingPropertiesForKeys: nil)
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("model.json").path) }
            .sorted { $0.path < $1.path }.first)
        let card = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: unit.appendingPathComponent("model.json")))
            as? [String: Any])
        let datasetFolder = try XCTUnwrap(card["datasetFolder"] as? String)
        let fold = try XCTUnwrap(card["fold"] as? Int), seed = try XCTUnwrap((card["seed"] as? NSNumber)?.uint64Value)
        let alone = folder.appendingPathComponent("alone")
        _ = try hrtem(["train", datasetFolder, "--fold", "\(fold)", "--seed", "\(seed)", "--epochs", "1", "--batch", "8",
                       "--threads", "1", "--out", alone.path])
        XCTAssertEqual(try Data(contentsOf: alone.appendingPathComponent("model.safetensors")),
                       try Data(contentsOf: unit.appendingPathComponent("model.safetensors")))
    }
}
