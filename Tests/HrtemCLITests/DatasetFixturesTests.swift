import Foundation
import Micrograph
import TestSupport
import XCTest

/// The whole path a user takes, through the built binary: import the fixtures' metadata table,
/// ingest the fixture frames, define a dataset from a query, build it twice in two data
/// folders (same version id, same bytes), and split by session without leaks.
final class DatasetFixturesTests: XCTestCase {
    func prepare(_ label: String) throws -> (URL, [String]) {
        let folder = try makeTemporaryFolder(label)
        let data = ["--data", folder.path]
        let fixtures = packageRoot.appendingPathComponent("Fixtures/synthetic")
        guard FileManager.default.fileExists(atPath: fixtures.path) else { throw XCTSkip("Fixtures/synthetic is absent") }
        let imported = try runHrtem(["import-metadata", fixtures.appendingPathComponent("Dataset_metadata.csv").path] + data)
        XCTAssertEqual(imported.status, 0, imported.standardError)
        let ingested = try runHrtem(["ingest", fixtures.path] + data)
        XCTAssertEqual(ingested.status, 0, ingested.standardError)
        return (folder, data)
    }

    func testFixturesBuildReproduciblyAcrossDataFolders() throws {
        let (first, data1) = try prepare("hrtem-ds-a")
        let (second, data2) = try prepare("hrtem-ds-b")
        defer { try? FileManager.default.removeItem(at: first); try? FileManager.default.removeItem(at: second) }
        var folders = [URL]()
        for data in [data1, data2] {
            let create = try runHrtem(["dataset", "create", "d884", "--where", "dose ~ 884 +- 20 and labeled",
                                       "--patch", "64", "--min-particle-pixels", "100", "--folds", "2"] + data)
            XCTAssertEqual(create.status, 0, create.standardError)
            XCTAssertTrue(create.standardOutput.contains("8 frames selected"), create.standardOutput)
            let build = try runHrtem(["dataset", "build", "d884", "--jobs", data == data1 ? "1" : "3"] + data)
            XCTAssertEqual(build.status, 0, build.standardError)
            let line = try XCTUnwrap(build.standardOutput.split(separator: "\n").last { $0.hasPrefix("d884@") })
            let id = String(line.dropFirst(5))
            folders.append(URL(fileURLWithPath: data[1]).appendingPathComponent("datasets/d884/\(id)"))
        }
        XCTAssertEqual(folders[0].lastPathComponent, folders[1].lastPathComponent, "same inputs and recipe, same version id")
        for name in ["images.npy", "labels.npy", "patches.csv", "folds.json", "recipe.json", "MANIFEST"] {
            XCTAssertEqual(try Data(contentsOf: folders[0].appendingPathComponent(name)),
                           try Data(contentsOf: folders[1].appendingPathComponent(name)), name)
        }
        let images = try readNPY(from: folders[0].appendingPathComponent("images.npy"))
        XCTAssertEqual(images.shape.dropFirst(), [64, 64])
        XCTAssertGreaterThan(images.shape[0], 8)
        let recipe = try JSONSerialization.jsonObject(with: Data(contentsOf: folders[0].appendingPathComponent("recipe.json"))) as! [String: Any]
        XCTAssertEqual(recipe["patchCount"] as? Int, images.shape[0])
        XCTAssertEqual((recipe["frames"] as? [Any])?.count, 8)
    }

    func testSessionGroupedFoldsDoNotLeak() throws {
        let (folder, data) = try prepare("hrtem-ds-session")
        defer { try? FileManager.default.removeItem(at: folder) }
        let create = try runHrtem(["dataset", "create", "bysession", "--where", "pixel_scale = 0.02 and labeled",
                                   "--patch", "64", "--min-particle-pixels", "100", "--folds", "2",
                                   "--group-folds-by", "session"] + data)
        XCTAssertEqual(create.status, 0, create.standardError)
        let build = try runHrtem(["dataset", "build", "bysession"] + data)
        XCTAssertEqual(build.status, 0, build.standardError)
        let id = String(try XCTUnwrap(build.standardOutput.split(separator: "\n").last { $0.hasPrefix("bysession@") }).dropFirst(10))
        let version = folder.appendingPathComponent("datasets/bysession/\(id)")
        let csv = try String(contentsOf: version.appendingPathComponent("patches.csv"), encoding: .utf8)
        let sessions = csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",")[1] }
        let folds = try JSONSerialization.jsonObject(with: Data(contentsOf: version.appendingPathComponent("folds.json"))) as! [String: Any]
        XCTAssertEqual(folds["rule"] as? String, "session")
        for fold in folds["folds"] as! [[String: Any]] {
            let train = Set((fold["train"] as! [Int]).map { sessions[$0] }), test = Set((fold["test"] as! [Int]).map { sessions[$0] })
            XCTAssertFalse(test.isEmpty)
            XCTAssertTrue(train.isDisjoint(with: test))
        }
        let verify = try runHrtem(["dataset", "verify", "bysession"] + data)
        XCTAssertEqual(verify.status, 0, verify.standardOutput)
    }
}
