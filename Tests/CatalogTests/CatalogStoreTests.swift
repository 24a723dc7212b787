import Catalog
import GRDB
import TestSupport
import XCTest

final class CatalogStoreTests: XCTestCase {
    func testOpensFileCatalogInWALWithEveryTable() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = DataFolder(url: folder.appendingPathComponent("nested/data"))
        let store = try CatalogStore(folder: data)
        XCTAssertTrue(FileManager.default.fileExists(atPath: data.catalogFile.path))
        try store.dbQueue.read { db in
            XCTAssertEqual(try String.fetchOne(db, sql: "PRAGMA journal_mode"), "wal")
            for table in ["sessions", "frames", "labels", "mirrors", "recipes", "dataset_versions", "models", "results"] {
                XCTAssertTrue(try db.tableExists(table), table)
            }
            let migrations = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
            XCTAssertEqual(Array(migrations.prefix(3)), ["v1-catalog", "v2-query-indexes", "v3-exact-seek-covering-indexes"])
        }
        // Reopening applies no migration twice and keeps the data.
        try store.upsertFrame(FrameRecord(session: "s", fileName: "a.dm3", material: "Au"))
        let reopened = try CatalogStore(folder: data)
        XCTAssertEqual(try reopened.allFrames().map(\.fileName), ["a.dm3"])
    }

    /// A catalog made before v3 (v2's indexes) gains v3's on open and keeps its frames.
    func testV2CatalogMigratesToCoveringIndexes() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("catalog.sqlite")
        do {
            let old = try DatabaseQueue(path: file.path)
            try CatalogSchema.migrator.migrate(old, upTo: "v2-query-indexes")
            try old.write { db in
                try db.execute(sql: "INSERT INTO sessions (folder) VALUES ('s')")
                try db.execute(sql: """
                    INSERT INTO frames (session, file_name, metadata_row, material, particle_size_nm, pixel_scale_nm, dose)
                    VALUES ('s', 'a.dm3', 2, 'Ag', 5, 0.02, 423), ('s', 'b.dm3', 1, 'Ag', 5, 0.02, 421),
                           ('s', 'c.dm3', 3, 'Au', 5, 0.02, 423)
                    """)
            }
        }
        let store = try CatalogStore(file: file)
        try store.dbQueue.read { db in
            let indexes = Set(try String.fetchAll(db, sql: "SELECT name FROM pragma_index_list('frames')"))
            for added in ["frames_material_scale_size_dose_row", "frames_material_size_dose_scale_row",
                          "frames_support_magnification_dose_row", "frames_size", "frames_magnification"] {
                XCTAssertTrue(indexes.contains(added), added)
            }
            for dropped in ["frames_material_size_scale_dose", "frames_material_scale_size_dose",
                            "frames_support_magnification_dose"] {
                XCTAssertFalse(indexes.contains(dropped), dropped)
            }
        }
        let query = #"material = "Ag" and size = 5 and pixel_scale = 0.02"#
        XCTAssertEqual(try store.frames(matching: query).map(\.fileName), ["b.dm3", "a.dm3"])
        XCTAssertEqual(try store.count(matching: query), 2)
    }

    func testUpsertKeepsIdentityAndCreatesSessions() throws {
        let store = try CatalogStore()
        let first = try store.upsertFrame(FrameRecord(session: "2021_08_26 5nm Au", fileName: "x_01.dm3", material: "Au",
                                                      particleSizeNm: 5))
        XCTAssertNotNil(first.id)
        var changed = first
        changed.dose = 423
        let second = try store.upsertFrame(changed)
        XCTAssertEqual(second.id, first.id)
        XCTAssertEqual(try store.frame(id: first.id!)?.dose, 423)
        // Same file name in another session is another frame.
        let other = try store.upsertFrame(FrameRecord(session: "other", fileName: "x_01.dm3"))
        XCTAssertNotEqual(other.id, first.id)
        XCTAssertEqual(try store.frame(session: "other", file: "x_01.dm3")?.id, other.id)
        let sessions = try store.sessions()
        XCTAssertEqual(sessions.map(\.folder), ["2021_08_26 5nm Au", "other"])
        XCTAssertEqual(sessions.first?.date, "2021-08-26")
        XCTAssertNil(sessions.last?.date)
    }

    func testBulkInsertIsAllOrNothing() throws {
        let store = try CatalogStore()
        try store.insertFrames([FrameRecord(session: "s", fileName: "a"), FrameRecord(session: "s", fileName: "b")])
        XCTAssertEqual(try store.allFrames().count, 2)
        XCTAssertThrowsError(try store.insertFrames([FrameRecord(session: "s", fileName: "c"),
                                                     FrameRecord(session: "s", fileName: "a")]))
        XCTAssertEqual(try store.allFrames().map(\.fileName), ["a", "b"])
    }

    func testLabelsMakeFramesLabeledAndUpsertBySource() throws {
        let store = try CatalogStore()
        let frame = try store.upsertFrame(FrameRecord(session: "s", fileName: "a.dm3"))
        try store.upsertFrame(FrameRecord(session: "s", fileName: "b.dm3"))
        XCTAssertEqual(try store.count(matching: "labeled"), 0)
        let label = try store.upsertLabel(LabelRecord(frameId: frame.id!, source: "png", particlePixels: 10))
        let again = try store.upsertLabel(LabelRecord(frameId: frame.id!, source: "png", particlePixels: 12))
        XCTAssertEqual(label.id, again.id)
        XCTAssertEqual(try store.labels(frameId: frame.id!).map(\.particlePixels), [12])
        XCTAssertEqual(try store.frames(matching: "labeled").map(\.fileName), ["a.dm3"])
        XCTAssertEqual(try store.frames(matching: "labeled = false").map(\.fileName), ["b.dm3"])
        XCTAssertEqual(try store.frames(matching: "not labeled").map(\.fileName), ["b.dm3"])
    }

    func testOtherTablesRoundTrip() throws {
        let store = try CatalogStore()
        try store.dbQueue.write { db in
            var mirror = MirrorRecord(name: "nersc", kind: "nersc", baseURL: "https://portal.nersc.gov/x")
            try mirror.insert(db)
            var recipe = RecipeRecord(name: "au-5nm", definition: "{}")
            try recipe.insert(db)
            var version = DatabaseVersionFixture.version(recipeId: recipe.id)
            try version.insert(db)
            try ModelRecord(id: "m1", datasetVersion: version.versionId, fold: 0, seed: 962).insert(db)
            var result = ResultRecord(modelId: "m1", datasetVersion: version.versionId, scope: "fold:0", hardDice: 0.8)
            try result.insert(db)
            XCTAssertEqual(try ResultRecord.fetchOne(db)?.hardDice, 0.8)
            XCTAssertNotNil(try ResultRecord.fetchOne(db)?.createdAt)
            XCTAssertEqual(try MirrorRecord.fetchOne(db)?.baseURL, "https://portal.nersc.gov/x")
            // Results are unique per (model, dataset version, scope).
            var duplicate = ResultRecord(modelId: "m1", datasetVersion: version.versionId, scope: "fold:0")
            XCTAssertThrowsError(try duplicate.insert(db))
        }
    }
}

enum DatabaseVersionFixture {
    static func version(recipeId: Int64?) -> DatasetVersionRecord {
        DatasetVersionRecord(recipeId: recipeId, versionId: "v-abc", folder: "datasets/au/v-abc", patchCount: 430)
    }
}
