import Catalog
import Experiments
import Foundation
import XCTest

final class DatasetResolutionTests: XCTestCase {
    var folder: URL!
    override func setUpWithError() throws { folder = try temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    func makeVersion(_ relative: String, recipe: String, folds: String = "{\"folds\": [[0], [1], [2], [3]]}") throws -> URL {
        let url = folder.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try Data(recipe.utf8).write(to: url.appendingPathComponent("recipe.json"))
        try Data(folds.utf8).write(to: url.appendingPathComponent("folds.json"))
        return url
    }

    func testVersionFolderGivesIdNameFoldsAndKeyMetadata() throws {
        let data = DataFolder(url: folder.appendingPathComponent("data"))
        let url = try makeVersion("data/datasets/low-dose/abc123", recipe: """
            {"name": "low-dose", "query": "dose ~ 80 +- 20",
             "frames": [{"material": "Au", "size": 2.2, "dose": 80, "pixel_scale": 0.02},
                        {"material": "Au", "size": 2.2, "dose": 85.5, "pixel_scale": 0.02}]}
            """)
        let byPath = try DatasetResolution.resolve(url.path, in: data)
        XCTAssertEqual(byPath.id, "abc123")
        XCTAssertEqual(byPath.name, "low-dose")
        XCTAssertEqual(byPath.foldCount, 4)
        XCTAssertEqual(byPath.folder, url.standardizedFileURL.path)
        XCTAssertEqual(byPath.metadata, [MetadataEntry("material", "Au"), MetadataEntry("size", "2.2 nm"),
                                         MetadataEntry("dose", "80, 85.5 e/Å²"), MetadataEntry("pixel scale", "0.02 nm/px"),
                                         MetadataEntry("frames", "2"), MetadataEntry("query", "dose ~ 80 +- 20")])
        XCTAssertEqual(try DatasetResolution.resolve("low-dose", in: data), byPath, "by name under <data>/datasets")
        XCTAssertEqual(try DatasetResolution.resolve("low-dose@abc", in: data), byPath)
        XCTAssertThrowsError(try DatasetResolution.resolve("low-dose@zzz", in: data))
        XCTAssertThrowsError(try DatasetResolution.resolve("absent", in: data)) {
            XCTAssertTrue("\($0)".contains("hrtem dataset build absent"), "\($0)")
        }
        try Data("not json".utf8).write(to: url.appendingPathComponent("recipe.json"))
        XCTAssertThrowsError(try DatasetResolution.resolve(url.path, in: data)) {
            XCTAssertTrue("\($0)".contains("recipe.json"), "\($0)")
        }
    }

    func testCatalogRegisteredVersionsResolveByRecipeName() throws {
        let data = DataFolder(url: folder.appendingPathComponent("data"))
        let old = try makeVersion("elsewhere/v1", recipe: "{\"query\": \"size = 5\"}")
        let new = try makeVersion("elsewhere/v2", recipe: "{\"query\": \"size = 5\"}")
        let catalog = try CatalogStore(folder: data)
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
        XCTAssertTrue(newest.metadata.contains(MetadataEntry("patches", "42")))
        XCTAssertEqual(try DatasetVersionResolutionCheck.resolve("five-nm@1111", data).id, "1111aaaa")
    }
}

enum DatasetVersionResolutionCheck {
    static func resolve(_ spec: String, _ data: DataFolder) throws -> DatasetVersionRef {
        try DatasetResolution.resolve(spec, in: data)
    }
}
