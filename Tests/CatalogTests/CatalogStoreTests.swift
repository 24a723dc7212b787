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

    /// Query results are decoded through SQLite's C API and ordered in Swift: they must equal
    /// GRDB's decoding of the same rows in SQL's catalog order, column for column.
    func testQueryRecordsEqualGRDBDecodingInCatalogOrder() throws {
        let store = try CatalogStore()
        var frames: [FrameRecord] = []
        for index in 0..<12 {
            frames.append(FrameRecord(
                session: "2021_08_26 Åu session \(index % 3)", fileName: "f\(index)_µ.dm3",
                metadataSource: index % 4 == 0 ? nil : "Dataset_metadata.csv", metadataRow: index % 5 == 0 ? nil : 12 - index,
                material: "Au", particleSizeNm: 5, shape: "Sphere", support: "UT Carbon", instrument: "Team05",
                dose: 423, doseRate: 2650.1, exposureSeconds: 0.1596, pixelScaleNm: 0.02, magnificationKx: 330,
                date: "2021-08-26", path: index % 2 == 0 ? nil : "/data/f\(index).dm3", byteSize: index % 2 == 0 ? nil : 1 << 33,
                sha256: index % 2 == 0 ? nil : String(repeating: "ab", count: 32), format: "dm4", width: 4096,
                height: 4096, pixelType: "float32", ingestedAt: "2024-06-11T10:00:00Z",
                facts: #"{"Microscope Info":{"Voltage":300000,"Name":"TEAM 0.5 ✓"}}"#))
        }
        try store.insertFrames(frames)
        try store.upsertFrame(FrameRecord(session: "other", fileName: "ag.dm3", material: "Ag", particleSizeNm: 5))
        let query = #"material = "Au" and size = 5 and pixel_scale = 0.02"#
        let compiled = try FrameQuery.parse(query).compile()
        let expected = try store.dbQueue.read { db in
            try FrameRecord.fetchAll(db, sql: """
                SELECT \(CatalogStore.frameColumns) FROM frames WHERE \(compiled.sql) ORDER BY \(CatalogStore.frameOrder)
                """, arguments: compiled.arguments)
        }
        XCTAssertEqual(expected.count, 12)
        XCTAssertEqual(try store.frames(matching: query), expected)
        XCTAssertEqual(try store.frameIds(matching: query), expected.map { $0.id! })
        XCTAssertEqual(expected.first?.metadataRow, 1, "catalog order, not insertion order")
        XCTAssertNil(expected.last?.metadataRow, "frames without a table row come last")
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
