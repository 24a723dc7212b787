import Catalog
import Experiments
import Foundation
import XCTest

final class DatasetResolutionTests: XCTestCase {
    var folder: URL!
    override func setUpWithError() throws { folder = try temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    func makeVersion(_ relative: String, recipe: String, folds: String = "{\"format\": 1, \"k\": 4, \"rule\": \"study\", \"folds\": []}") throws -> URL {
        let url = folder.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try Data(recipe.utf8).write(to: url.appendingPathComponent("recipe.json"))
        try Data(folds.utf8).write(to: url.appendingPathComponent("folds.json"))
        return url
    }

    /// recipe.json of a built version (what `DatasetVersionInfo` holds).
    func info(_ id: String, name: String, patches: Int, folds: Int = 3) -> String {
        """
        {"versionId": "\(id)", "name": "\(name)", "query": "size = 5", "formatVersion": 1,
         "recipe": {"name": "\(name)", "query": "size = 5", "rescale": "histogram", "folds": \(folds)},
         "frames": [{"session": "S 1/a", "file": "x.dm3", "sha256": "00", "labelSha256": "11"},
                    {"session": "S 1/a", "file": "y.dm3", "sha256": "22", "labelSha256": "33"}],
         "frameOrder": [1, 0], "frameCount": 2, "patchCount": \(patches), "patchSize": 64, "foldRule": "study"}
        """
    }

    func testVersionFoldersResolveByPathNameAndPrefix() throws {
        let data = DataFolder(url: folder.appendingPathComponent("data"))
        let url = try makeVersion("data/datasets/low-dose/abc123", recipe: info("abc123", name: "low-dose", patches: 7))
        let byPath = try DatasetResolution.resolve(url.path, in: data)
        XCTAssertEqual(byPath.id, "abc123")
        XCTAssertEqual(byPath.name, "low-dose")
        XCTAssertEqual(byPath.foldCount, 4, "the folds.json's k")
        XCTAssertEqual(byPath.folder, url.standardizedFileURL.path)
        XCTAssertEqual(byPath.metadata, [MetadataEntry("frames", "2"), MetadataEntry("patches", "7 (64 × 64 px)"),
                                         MetadataEntry("preprocessing", "histogram, flat-field on")], "no catalog: no frame facts")
        XCTAssertEqual(try DatasetResolution.resolve("low-dose", in: data), byPath, "the only version under <data>/datasets")
        XCTAssertEqual(try DatasetResolution.resolve("low-dose@abc", in: data), byPath)
        XCTAssertThrowsError(try DatasetResolution.resolve("low-dose@zzz", in: data)) {
            XCTAssertTrue("\($0)".contains("starts with zzz") && "\($0)".contains("abc123"), "\($0)")
        }
        _ = try makeVersion("data/datasets/low-dose/abd456", recipe: info("abd456", name: "low-dose", patches: 7))
        XCTAssertThrowsError(try DatasetResolution.resolve("low-dose", in: data), "two unregistered versions: name one") {
            XCTAssertTrue("\($0)".contains("low-dose@PREFIX"), "\($0)")
        }
        XCTAssertThrowsError(try DatasetResolution.resolve("low-dose@ab", in: data))
        XCTAssertEqual(try DatasetResolution.resolve("low-dose@abd", in: data).id, "abd456")
        XCTAssertThrowsError(try DatasetResolution.resolve("absent", in: data)) {
            XCTAssertTrue("\($0)".contains("hrtem dataset build absent"), "\($0)")
        }
        XCTAssertThrowsError(try DatasetResolution.resolve("@abc", in: data)) {
            XCTAssertTrue("\($0)".contains("no dataset name"), "\($0)")
        }
        try Data("not json".utf8).write(to: url.appendingPathComponent("recipe.json"))
        XCTAssertThrowsError(try DatasetResolution.resolve(url.path, in: data)) {
            XCTAssertTrue("\($0)".contains(url.appendingPathComponent("recipe.json").path), "\($0)")
        }
        try Data("{\"name\": \"x\"}".utf8).write(to: url.appendingPathComponent("recipe.json"))
        XCTAssertThrowsError(try DatasetResolution.resolve(url.path, in: data), "a version id is never guessed") {
            XCTAssertTrue("\($0)".contains("missing key \"versionId\""), "\($0)")
        }
    }

    func testCatalogRegisteredVersionsResolveByRecipeNameWithFrameFacts() throws {
        let data = DataFolder(url: folder.appendingPathComponent("data"))
        let folds = "{\"format\": 1, \"k\": 3, \"rule\": \"study\", \"folds\": []}"
        let old = try makeVersion("elsewhere/v1", recipe: info("1111aaaa", name: "five-nm", patches: 40), folds: folds)
        let new = try makeVersion("elsewhere/v2", recipe: info("2222bbbb", name: "five-nm", patches: 42), folds: folds)
        let catalog = try CatalogStore(folder: data)
        _ = try catalog.upsertFrame(FrameRecord(session: "S 1/a", fileName: "x.dm3", material: "Au", particleSizeNm: 5,
                                                dose: 423, pixelScaleNm: 0.02))
        _ = try catalog.upsertFrame(FrameRecord(session: "S 1/a", fileName: "y.dm3", material: "Au", particleSizeNm: 5,
                                                dose: 884, pixelScaleNm: 0.02))
        try catalog.dbQueue.write { db in
            var recipe = RecipeRecord(name: "five-nm", definition: "{}")
            try recipe.insert(db)
            var first = DatasetVersionRecord(recipeId: recipe.id, versionId: "1111aaaa", folder: old.path, patchCount: 40)
            try first.insert(db)
            var second = DatasetVersionRecord(recipeId: recipe.id, versionId: "2222bbbb", folder: new.path, patchCount: 42)
            try second.insert(db)
        }
        let newest = try DatasetVersionResolutionCheck.resolve("five-nm", data)
        XCTAssertEqual(newest.id, "2222bbbb", "the newest version")
        XCTAssertEqual(newest.name, "five-nm")
        XCTAssertEqual(newest.folder, new.path)
        XCTAssertEqual(newest.foldCount, 3)
        XCTAssertEqual(newest.metadata, [MetadataEntry("material", "Au"), MetadataEntry("size", "5 nm"),
                                         MetadataEntry("dose", "423, 884 e/Å²"), MetadataEntry("pixel scale", "0.02 nm/px"),
                                         MetadataEntry("frames", "2"), MetadataEntry("patches", "42 (64 × 64 px)"),
                                         MetadataEntry("preprocessing", "histogram, flat-field on")])
        XCTAssertEqual(try DatasetVersionResolutionCheck.resolve("five-nm@1111", data).id, "1111aaaa")
        XCTAssertEqual(try DatasetVersionResolutionCheck.resolve(old.path, data).id, "1111aaaa", "by folder, same facts")
        XCTAssertThrowsError(try DatasetVersionResolutionCheck.resolve("five-nm@9", data))
    }
}

enum DatasetVersionResolutionCheck {
    static func resolve(_ spec: String, _ data: DataFolder) throws -> DatasetVersionRef {
        try DatasetResolution.resolve(spec, in: data)
    }
}
