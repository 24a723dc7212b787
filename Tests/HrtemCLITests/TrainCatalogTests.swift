import Catalog
import Foundation
import TestSupport
import XCTest

/// `hrtem train` and `hrtem evaluate` on a catalog dataset register the model and its metrics
/// in the catalog's `models` and `results` tables.
final class TrainCatalogTests: XCTestCase {
    func testTrainAndEvaluateRecordInTheCatalog() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = folder.appendingPathComponent("data").path
        let fixtures = packageRoot.appendingPathComponent("Fixtures/synthetic")
        func hrtem(_ arguments: [String]) throws -> CommandResult {
            let result = try runHrtem(arguments + ["--data", data])
            XCTAssertEqual(result.status, 0, "hrtem \(arguments.joined(separator: " ")): \(result.standardError)")
            return result
        }
        _ = try hrtem(["import-metadata", fixtures.appendingPathComponent("Dataset_metadata.csv").path])
        _ = try hrtem(["ingest", fixtures.path])
        _ = try hrtem(["dataset", "create", "coarse", "--where", "dose ~ 884 +- 5 and pixel_scale = 0.042",
                       "--patch", "32", "--min-particle-pixels", "100", "--folds", "2"])
        _ = try hrtem(["dataset", "build", "coarse"])
        let model = folder.appendingPathComponent("model")
        let trained = try hrtem(["train", "coarse", "--fold", "1", "--epochs", "1", "--batch", "8", "--widths", "4",
                                 "--bottleneck", "8", "--threads", "1", "--out", model.path])
        let id = try XCTUnwrap(trained.standardOutput.components(separatedBy: "recorded in the catalog as model ").dropFirst().first?
            .split(separator: "\n").first.map(String.init), trained.standardOutput)

        let store = try CatalogStore(file: URL(fileURLWithPath: data).appendingPathComponent("catalog.sqlite"))
        let record = try XCTUnwrap(try store.model(id: id))
        XCTAssertEqual(record.fold, 1)
        XCTAssertEqual(record.checkpointPath, model.path)
        let card = try JSONSerialization.jsonObject(with: Data(XCTUnwrap(record.card).utf8)) as? [String: Any]
        XCTAssertEqual(card?["datasetVersion"] as? String, record.datasetVersion)
        XCTAssertEqual(try store.results(modelId: id).map(\.scope), ["fold:1"])

        let evaluated = try hrtem(["evaluate", model.path, "coarse", "--all"])
        XCTAssertTrue(evaluated.standardOutput.contains("recorded in the catalog"), evaluated.standardOutput)
        let results = try store.results(modelId: id)
        XCTAssertEqual(results.map(\.scope), ["fold:1", "all"])
        let all = try XCTUnwrap(results.last)
        XCTAssertEqual(all.datasetVersion, record.datasetVersion)
        XCTAssertNotNil(all.hardDice)
        // Evaluating again replaces the row rather than adding one.
        _ = try hrtem(["evaluate", model.path, "coarse", "--all"])
        XCTAssertEqual(try store.results(modelId: id).count, 2)

        // The matrix knows the model the CLI trained (same fold, same settings): it trains fold 0
        // only and scores the CLI's fold-1 model beside it.
        let report = folder.appendingPathComponent("report")
        let matrix = try hrtem(["matrix", "--datasets", "coarse", "--folds", "2", "--epochs", "1", "--batch", "8",
                                "--widths", "4", "--bottleneck", "8", "--threads", "1", "--jobs", "1", "--out", report.path])
        XCTAssertEqual(matrix.standardError.components(separatedBy: "] ran: train").count - 1, 1, matrix.standardError)
        XCTAssertTrue(matrix.standardError.contains("already-done: train coarse@"), matrix.standardError)
        let models = try JSONSerialization.jsonObject(with: Data(contentsOf: report.appendingPathComponent("matrix.json"))) as? [String: Any]
        XCTAssertTrue("\(models?["models"] ?? "")".contains(model.path), "the CLI's model folder is the matrix's fold-1 model")

        // A dead start is said to be one: on stderr, in the catalog's card and in `model list`.
        let dead = try hrtem(["train", "coarse", "--fold", "0", "--seed", "962", "--debug-dead-start-seeds", "962", "--epochs", "1",
                              "--batch", "8", "--widths", "4", "--bottleneck", "8", "--threads", "1",
                              "--out", folder.appendingPathComponent("dead").path])
        XCTAssertTrue(dead.standardError.contains("warning: the model collapsed"), dead.standardError)
        let deadID = try XCTUnwrap(dead.standardOutput.components(separatedBy: "recorded in the catalog as model ").dropFirst().first?
            .split(separator: "\n").first.map(String.init), dead.standardOutput)
        XCTAssertTrue(try XCTUnwrap(try store.model(id: deadID)?.card).contains("\"collapse\""))
        let list = try hrtem(["model", "list"])
        let deadLine = try XCTUnwrap(list.standardOutput.split(separator: "\n").first { $0.contains(deadID) }, list.standardOutput)
        XCTAssertTrue(deadLine.contains("trained, COLLAPSED"), String(deadLine))
        XCTAssertFalse(try XCTUnwrap(list.standardOutput.split(separator: "\n").first { $0.contains(id) }).contains("COLLAPSED"))
    }
}
