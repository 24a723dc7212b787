import Catalog
import GRDB
import TestSupport
import XCTest

/// `FrameQuery.compile(in:)` turns numeric ranges into the catalog's exact values so indexes
/// can seek every predicate; `CatalogStore` orders results in Swift. Both must select and order
/// exactly what the plain range SQL with `ORDER BY frameOrder` does.
final class ExactSeekTests: XCTestCase {
    /// Frames whose numeric columns hold what the exact-value form must get right: values on
    /// and just inside the 1e-5 margins, 0.0 and -0.0, NULLs, a text and an integer in REAL
    /// columns, more distinct doses than `StoredValues.limit`, and metadata rows that repeat
    /// (two tables) or are missing.
    private func makeStore() throws -> CatalogStore {
        let store = try CatalogStore()
        // 5 -/+ 1e-5 are computed as the compiled bounds are: exactly on them, so outside.
        let sizes: [Double?] = [2.2, 5, 5 + 0.9e-5, 5 - 1e-5, 5 + 1e-5, 10, 20, nil]
        let scales: [Double?] = [0.02, 0.026, 0.0, -0.0, nil, 0.042]
        let magnifications: [Double?] = [330, 260, nil, 160]
        var frames: [FrameRecord] = []
        for index in 0..<96 {
            let row: Int? = index % 9 == 0 ? nil : (index % 7 == 0 ? 3 : index)
            frames.append(FrameRecord(
                session: "S\(index % 5)", fileName: "f\(index).dm3", metadataSource: index % 2 == 0 ? "a.csv" : "b.csv",
                metadataRow: row, material: ["Au", "Ag", "CdSe"][index % 3], particleSizeNm: sizes[index % sizes.count],
                support: index % 4 == 0 ? "SiN" : "UT Carbon",
                dose: index % 11 == 0 ? nil : 400 + Double(index % 40), doseRate: 2600 + Double(index % 3) * 50,
                pixelScaleNm: scales[index % scales.count], magnificationKx: magnifications[index % magnifications.count]))
        }
        // Frames are stored in an order unlike catalog order, as imports of several tables are.
        try store.insertFrames(frames.reversed())
        try store.dbQueue.write { db in
            // SQLite keeps text in a REAL column as TEXT (it sorts above every number) and turns
            // an integer into a REAL.
            try db.execute(sql: "UPDATE frames SET dose = 'n/a' WHERE file_name = 'f5.dm3'")
            try db.execute(sql: "UPDATE frames SET particle_size_nm = 10 WHERE file_name = 'f6.dm3'")
            XCTAssertEqual(try String.fetchOne(db, sql: "SELECT typeof(dose) FROM frames WHERE file_name = 'f5.dm3'"), "text")
        }
        return store
    }

    private let queries = [
        "size = 5", "size in (2.2, 5)", "size in (5, 5.000001)", "size ~ 5 +- 0.5", "size between 2.2 and 5",
        "size between 5 and 5", "size < 5", "size <= 5", "size > 5", "size >= 5", "not size = 5", "size != 5",
        "size not in (2.2, 5)", "size not between 2.2 and 5",
        "dose ~ 420 +- 20", "dose ~ 423 +- 2", "dose < 500", "dose <= 401", "dose > 430", "dose ~ 1000 +- 1",
        "not dose ~ 1000 +- 1", "dose between 410 and 415 or size = 20",
        "pixel_scale = 0", "pixel_scale = 0.02 and size = 5 and material = \"Au\"",
        "material = \"Ag\" and size = 5 and pixel_scale = 0.02", "material = \"Au\" and dose ~ 415 +- 10 and size = 10",
        "support = \"SiN\" and magnification = 330 and dose < 420", "magnification = 330 or size = 2.2",
        "not (magnification = 330 and dose < 430)", "magnification <= 260", "dose_rate ~ 2650 +- 1",
    ]

    /// The ids the plain range SQL selects, in catalog order by SQL.
    private func referenceIds(_ store: CatalogStore, _ query: String) throws -> [Int64] {
        let compiled = try FrameQuery.parse(query).compile()
        return try store.dbQueue.read { db in
            try Int64.fetchAll(db, sql: "SELECT id FROM frames WHERE \(compiled.sql) ORDER BY \(CatalogStore.frameOrder)",
                               arguments: compiled.arguments)
        }
    }

    func testExactValuesSelectAndOrderWhatRangesDo() throws {
        let store = try makeStore()
        var selectedSomething = 0
        for query in queries {
            let expected = try referenceIds(store, query)
            if !expected.isEmpty { selectedSomething += 1 }
            XCTAssertEqual(try store.frameIds(matching: query), expected, query)
            XCTAssertEqual(try store.frames(matching: query).map(\.id), expected, query)
            XCTAssertEqual(try store.count(matching: query), expected.count, query)
        }
        XCTAssertGreaterThan(selectedSomething, queries.count - 4, "the battery must select frames to compare")
    }

    func testWhichRangesBecomeValueLists() throws {
        let store = try makeStore()
        func sql(_ query: String) throws -> String {
            try store.dbQueue.read { db in try FrameQuery.parse(query).compile(in: db).sql }
        }
        XCTAssertEqual(try sql("size = 5"), "(frames.particle_size_nm IN (?, ?))", "5 -/+ 1e-5 are outside the margin")
        XCTAssertEqual(try store.dbQueue.read { db in try FrameQuery.parse("size = 5").compile(in: db).values },
                       [(5.0).databaseValue, (5 + 0.9e-5).databaseValue])
        XCTAssertEqual(try store.dbQueue.read { db in try FrameQuery.parse("size in (5, 5.000001)").compile(in: db).values },
                       [5.0, 5 + 0.9e-5, 5 + 1e-5].map(\.databaseValue), "overlapping margins: one list, each value once")
        XCTAssertEqual(try sql("magnification <= 260"), "(frames.magnification_kx IN (?, ?))")
        XCTAssertEqual(try sql("dose ~ 1000 +- 1"), "0", "no stored value in the range selects nothing")
        XCTAssertEqual(try sql("dose ~ 420 +- 20"), "(frames.dose > ? AND frames.dose < ?)", "more distinct values than the limit")
        XCTAssertEqual(try sql("size > 5"), "frames.particle_size_nm > ?", "no upper bound: text would also qualify")
        XCTAssertEqual(try sql("dose_rate ~ 2650 +- 1"), "(frames.dose_rate > ? AND frames.dose_rate < ?)", "no value index")
        XCTAssertEqual(try sql("date between 2021-01-01 and 2021-12-31"), "(frames.date BETWEEN ? AND ?)", "dates stay ranges")
    }

    func testStoredValuesAreTheDistinctNumbersInTheInterval() throws {
        let store = try makeStore()
        try store.dbQueue.read { db in
            let below5 = NumericInterval(lower: nil, lowerInclusive: false, upper: 5, upperInclusive: true)
            XCTAssertEqual(try StoredValues.distinct(of: .size, in: below5, db: db), [2.2, 5 - 1e-5, 5])
            let zero = NumericInterval(lower: -1e-5, lowerInclusive: false, upper: 1e-5, upperInclusive: false)
            XCTAssertEqual(try StoredValues.distinct(of: .pixelScale, in: zero, db: db), [0], "0.0 and -0.0 are one value")
            let doses = NumericInterval(lower: 0, lowerInclusive: true, upper: 1000, upperInclusive: true)
            XCTAssertNil(try StoredValues.distinct(of: .dose, in: doses, db: db), "40 doses, more than the limit")
            XCTAssertEqual(try StoredValues.distinct(of: .dose, in: NumericInterval(lower: 438, lowerInclusive: false,
                                                                                   upper: 1000, upperInclusive: true), db: db),
                           [439], "the text dose sorts above 1000: never in a bounded interval")
            let open = NumericInterval(lower: 430, lowerInclusive: false, upper: nil, upperInclusive: false)
            XCTAssertNil(try StoredValues.distinct(of: .dose, in: open, db: db))
            XCTAssertNil(try StoredValues.distinct(of: .exposure, in: below5, db: db), "exposure has no value index")
        }
    }

    func testEveryValueIndexLeadsWithItsFieldsColumn() throws {
        let store = try makeStore()
        try store.dbQueue.read { db in
            for (field, index) in StoredValues.indexes {
                let columns = try String.fetchAll(db, sql: "SELECT name FROM pragma_index_info(?) ORDER BY seqno", arguments: [index])
                XCTAssertEqual(columns.first.map { "frames." + $0 }, field.column, index)
            }
        }
    }

    /// Without ANALYZE (catalogs are never analyzed), the study's and the benchmark's query
    /// shapes seek one index on all their predicates and read ids and order from it alone.
    func testQueryShapesSeekCoveringIndexes() throws {
        let store = try makeStore()
        let shapes = [
            ("material = \"Ag\" and size = 5 and pixel_scale = 0.02", "frames_material_scale_size_dose_row",
             "material=? AND pixel_scale_nm=? AND particle_size_nm=?"),
            ("material = \"Au\" and dose ~ 415 +- 10 and size = 10", "frames_material_size_dose_scale_row",
             "material=? AND particle_size_nm=? AND dose=?"),
            ("support = \"SiN\" and magnification = 330 and dose < 420", "frames_support_magnification_dose_row",
             "support=? AND magnification_kx=? AND dose=?"),
        ]
        try store.dbQueue.read { db in
            XCTAssertFalse(try db.tableExists("sqlite_stat1"))
            for (query, index, seek) in shapes {
                let compiled = try FrameQuery.parse(query).compile(in: db)
                let plan = try Row.fetchAll(
                    db, sql: "EXPLAIN QUERY PLAN SELECT frames.metadata_row, frames.id FROM frames WHERE \(compiled.sql)",
                    arguments: compiled.arguments).map { $0["detail"] as String? ?? "" }.joined(separator: "; ")
                XCTAssertTrue(plan.contains("COVERING INDEX \(index) (\(seek))"), "\(query): \(plan)")
            }
        }
    }
}
