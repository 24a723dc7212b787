import Catalog
import Foundation
import Micrograph
import TestSupport
import XCTest

/// `hrtem recommend` on a catalog of the synthetic fixtures: three dataset versions built from
/// it (low dose, high dose, coarse pixel scale), a fold model registered per dataset, and matrix
/// results recorded for them (the recommendation reads what a matrix records; training is
/// tested elsewhere).
final class RecommendCommandTests: XCTestCase {
    func testRecommendsByNearestConditionsAndWarnsWhenFar() throws {
        let fixtures = packageRoot.appendingPathComponent("Fixtures/synthetic")
        let folder = try makeTemporaryFolder("hrtem-recommend")
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = folder.appendingPathComponent("data")
        func hrtem(_ arguments: [String]) throws -> CommandResult {
            try runHrtem(arguments + ["--data", data.path], in: folder)
        }
        XCTAssertEqual(try hrtem(["import-metadata", fixtures.appendingPathComponent("Dataset_metadata.csv").path]).status, 0)
        XCTAssertEqual(try hrtem(["ingest", fixtures.path]).status, 0)
        let recipes = ["low": "dose ~ 80 +- 20 and pixel_scale = 0.02", "high": "dose ~ 884 +- 20 and pixel_scale = 0.02",
                       "coarse": "dose ~ 884 +- 20 and pixel_scale = 0.042"]
        for (name, query) in recipes.sorted(by: { $0.key < $1.key }) {
            let created = try hrtem(["dataset", "create", name, "--where", query, "--patch", "32", "--stride", "32",
                                     "--min-particle-pixels", "100", "--folds", "3"])
            XCTAssertEqual(created.status, 0, created.standardError)
            let built = try hrtem(["dataset", "build", name])
            XCTAssertEqual(built.status, 0, built.standardError)
        }
        let store = try CatalogStore(folder: DataFolder(url: data))
        let versions = try store.dbQueue.read { db in try DatasetVersionRecord.fetchAll(db) }
        var ids = [String: String]()
        for record in versions {
            let recipe = try JSONSerialization.jsonObject(with: Data(contentsOf: data.appendingPathComponent(record.folder)
                .appendingPathComponent("recipe.json"))) as! [String: Any]
            ids[recipe["name"] as! String] = record.versionId
        }
        XCTAssertEqual(Set(ids.keys), ["low", "high", "coarse"])
        let dice: [String: [String: Double]] = [
            "low": ["low": 0.90, "high": 0.70, "coarse": 0.50],
            "high": ["low": 0.60, "high": 0.93, "coarse": 0.55],
            "coarse": ["low": 0.40, "high": 0.65, "coarse": 0.91],
        ]
        for (train, scores) in dice {
            try store.registerModel(ModelRecord(id: "\(train)-f0", datasetVersion: ids[train]!, fold: 0), datasetFolder: nil)
            for (test, value) in scores {
                try store.recordResult(ResultRecord(modelId: "\(train)-f0", datasetVersion: ids[test]!, scope: "all", hardDice: value),
                                       datasetFolder: nil)
            }
        }

        let lowDose = try hrtem(["recommend", "20240108_Au_UTC_330kx_1000e_0p0798s_01.dm3"])
        XCTAssertEqual(lowDose.status, 0, lowDose.standardError)
        XCTAssertTrue(lowDose.standardOutput.contains("1. low: expected hard Dice 0.9000"), lowDose.standardOutput)
        XCTAssertFalse(lowDose.standardError.contains("warning"), lowDose.standardError)

        let coarse = try hrtem(["recommend", "20240108_Au_UTC_160kx_1380e_0p6384s_01.dm3", "--json"])
        XCTAssertEqual(coarse.status, 0, coarse.standardError)
        let json = try JSONSerialization.jsonObject(with: Data(coarse.standardOutput.utf8)) as! [String: Any]
        let ranking = (json["recommendation"] as! [String: Any])["ranking"] as! [[String: Any]]
        XCTAssertEqual(ranking.first?["trainDatasetName"] as? String, "coarse")

        let byQuery = try hrtem(["recommend", "--where", "dose < 100"])
        XCTAssertEqual(byQuery.status, 0, byQuery.standardError)
        XCTAssertTrue(byQuery.standardOutput.contains("1. low:"), byQuery.standardOutput)

        XCTAssertTrue(lowDose.standardOutput.contains("check skipped"), "no model folder here yet: \(lowDose.standardOutput)")

        // A real fold model trained on the low-dose version (hrtem train records it and its own
        // fold's score): the first choice's models are then run on the frame itself.
        let trained = try hrtem(["train", "low", "--fold", "0", "--epochs", "1", "--batch", "8", "--widths", "4",
                                 "--bottleneck", "8", "--threads", "1"])
        XCTAssertEqual(trained.status, 0, trained.standardError)
        let checked = try hrtem(["recommend", "20240108_Au_UTC_330kx_1000e_0p0798s_01.dm3"])
        XCTAssertEqual(checked.status, 0, checked.standardError)
        XCTAssertTrue(checked.standardOutput.contains("1. low:") && checked.standardOutput.contains("(2 models)"), checked.standardOutput)
        XCTAssertTrue(checked.standardOutput.contains("check on the frame with low's 1 models: uncertainty 0.0000"),
                      "one model cannot disagree with itself: \(checked.standardOutput)")

        // A frame at a pixel scale nothing was tested at: ranked, but with a warning.
        let far = folder.appendingPathComponent("far.dm4")
        try writeDM(Raster<Float>(width: 32, height: 32, repeating: 100), to: far, pixelSizeNM: 0.5)
        let warned = try hrtem(["recommend", far.path, "--no-check"])
        XCTAssertEqual(warned.status, 0, warned.standardError)
        XCTAssertTrue(warned.standardError.contains("no model was tested near these conditions"), warned.standardError)
        XCTAssertTrue(warned.standardOutput.contains("(far)"), warned.standardOutput)

        // A frame with no calibration and no catalog row: nothing to compare, said so.
        let bare = folder.appendingPathComponent("bare.dm4")
        try writeDM(Raster<Float>(width: 32, height: 32, repeating: 100), to: bare)
        let refused = try hrtem(["recommend", bare.path])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.standardError.contains("no dose and no pixel scale"), refused.standardError)
    }
}
