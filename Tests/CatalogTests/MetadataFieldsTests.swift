import Catalog
import GRDB
import TestSupport
import XCTest

/// The field registry, typed values with their sources, registered fields in queries, name
/// patterns and unit conversion; and a catalog of the previous schema opening with its rows.
final class MetadataFieldsTests: XCTestCase {
    /// A catalog made by the release before the field registry (schema v3) keeps every row and
    /// gains the registry on open.
    func testPreviousSchemaCatalogOpensWithEveryRowKept() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("catalog.sqlite")
        do {
            let old = try DatabaseQueue(path: file.path)
            try CatalogSchema.migrator.migrate(old, upTo: "v3-exact-seek-covering-indexes")
            try old.write { db in
                XCTAssertFalse(try db.tableExists("fields"))
                try db.execute(sql: "INSERT INTO sessions (folder, date) VALUES ('s1', '2021-08-26'), ('s2', NULL)")
                try db.execute(sql: """
                    INSERT INTO frames (session, file_name, metadata_source, metadata_row, material, particle_size_nm, dose, pixel_scale_nm,
                                        magnification_kx, date, path, sha256, facts)
                    VALUES ('s1', 'a.dm3', 't.csv', 1, 'Au', 5, 420, 0.02, 330, '2021-08-26', '/x/a.dm3', 'aa', '{}'),
                           ('s2', 'b.dm3', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '/x/b.dm3', 'bb', '{}')
                    """)
                try db.execute(sql: "INSERT INTO labels (frame_id, source, path, particle_pixels) VALUES (1, 'png', '/x/a.png', 12)")
                try db.execute(sql: "INSERT INTO recipes (name, definition) VALUES ('r', '{}')")
                try db.execute(sql: "INSERT INTO mirrors (name, kind, base_url) VALUES ('m', 'nersc', 'http://x/')")
            }
            try old.close()
        }
        let store = try CatalogStore(file: file)
        try store.dbQueue.read { db in
            for (table, rows) in [("sessions", 2), ("frames", 2), ("labels", 1), ("recipes", 1), ("mirrors", 1)] {
                XCTAssertEqual(try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)"), rows, table)
            }
        }
        let a = try XCTUnwrap(store.frame(session: "s1", file: "a.dm3"))
        XCTAssertEqual([a.material, a.date, a.path, a.sha256], ["Au", "2021-08-26", "/x/a.dm3", "aa"])
        XCTAssertEqual([a.particleSizeNm, a.dose, a.pixelScaleNm, a.magnificationKx], [5, 420, 0.02, 330])
        XCTAssertEqual(try store.count(matching: "dose ~ 420 +- 1 and labeled"), 1)
        XCTAssertEqual(try store.count(matching: "dose is missing"), 1)
        XCTAssertEqual(try store.count(matching: "voltage is missing"), 2)
        XCTAssertTrue(try store.fieldRegistry().names.contains("voltage"))
    }

    func testRegisteredFieldsAreTypedSourcedAndQueried() throws {
        let store = try CatalogStore()
        try store.insertFrames((1...6).map { FrameRecord(session: "s", fileName: "f\($0).dm3", material: $0 <= 3 ? "Au" : "Ag") })
        let (defocus, flag) = try store.dbQueue.write { db in
            (try FieldRegistry.add(name: "Defocus", kind: .number, unit: "nm", description: nil, in: db),
             try FieldRegistry.add(name: "aligned", kind: .boolean, unit: nil, description: nil, in: db))
        }
        XCTAssertEqual(defocus.rawValue, "defocus")
        XCTAssertThrowsError(try store.dbQueue.write { db in
            try FieldRegistry.add(name: "DOSE", kind: .number, unit: nil, description: nil, in: db)
        }) { XCTAssertTrue("\($0)".contains("exists already"), "\($0)") }
        XCTAssertThrowsError(try store.dbQueue.write { db in
            try FieldRegistry.add(name: "and", kind: .number, unit: nil, description: nil, in: db)
        })

        let ids = try store.frameIds(matching: "file is not missing")
        try store.dbQueue.write { db in
            for (offset, id) in ids.enumerated() {
                try FrameValues.write(.number(Double(-10 * (offset + 1))), to: defocus, frameId: id,
                                      source: ValueSource(.tag, "t"), in: db)
                if offset.isMultiple(of: 2) {
                    try FrameValues.write(.boolean(true), to: flag, frameId: id, source: ValueSource(.table, "t.csv line \(offset + 2)"), in: db)
                }
            }
            // Wrong type: refused.
            XCTAssertThrowsError(try FrameValues.write(.text("far"), to: defocus, frameId: ids[0], source: ValueSource(.set, "x"), in: db))
            // A table outranks a tag; a tag does not replace a table's value; `set` outranks both.
            XCTAssertNotNil(try FrameValues.write(.number(-11), to: defocus, frameId: ids[0], source: ValueSource(.table, "t.csv line 2"), in: db))
            XCTAssertNil(try FrameValues.write(.number(-12), to: defocus, frameId: ids[0], source: ValueSource(.tag, "t"), in: db))
            XCTAssertNotNil(try FrameValues.write(.number(-13), to: defocus, frameId: ids[0], source: ValueSource(.set, "s"), in: db))
            XCTAssertNil(try FrameValues.write(.number(-14), to: defocus, frameId: ids[0], source: ValueSource(.table, "t.csv line 2"), in: db))
        }
        XCTAssertEqual(try store.count(matching: "defocus = -13"), 1)
        XCTAssertEqual(try store.count(matching: "defocus ~ -25 +- 6"), 2)       // -20, -30
        XCTAssertEqual(try store.count(matching: #"material = "Au" and defocus between -30 and -15"#), 2)
        XCTAssertEqual(try store.count(matching: "defocus in (-40, -50)"), 2)
        XCTAssertEqual(try store.count(matching: "aligned"), 3)
        XCTAssertEqual(try store.count(matching: "not aligned"), 3)
        XCTAssertEqual(try store.count(matching: "aligned is missing"), 3)
        XCTAssertEqual(try store.count(matching: "aligned = true or defocus < -55"), 4)
        XCTAssertEqual(try store.count(matching: "not (defocus < -35)"), 3)
        let history = try store.dbQueue.read { db in try FrameValues.history(frameId: ids[0], in: db) }
        XCTAssertEqual(history.map(\.new), ["-10", "true", "-11", "-13"])
        XCTAssertEqual(history.last?.source, ValueSource(.set, "s"))

        // A registered field's test seeks its own index; a composite index covers a mixed query.
        func plan(_ text: String) throws -> String {
            let query = try store.parseQuery(text)
            return try store.dbQueue.read { db -> String in
                let compiled = try query.compile(in: db)
                return try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT count(*) FROM frames WHERE \(compiled.sql)",
                                        arguments: compiled.arguments).map { $0["detail"] as String }.joined(separator: "\n")
            }
        }
        let single = try plan("defocus ~ -25 +- 6")
        XCTAssertTrue(single.contains("USING COVERING INDEX frames_field_8 (field_8=?)"), single)
        let index = try store.dbQueue.write { db in try FieldRegistry.load(from: db).addIndex(over: ["material", "defocus"], in: db) }
        XCTAssertEqual(index, "frames_by_material_defocus")
        let mixed = try plan(#"material = "Au" and defocus ~ -25 +- 6"#)
        XCTAssertTrue(mixed.contains("COVERING INDEX frames_by_material_defocus (material=? AND field_8=?)"), mixed)
        XCTAssertEqual(try store.count(matching: #"material = "Au" and defocus ~ -25 +- 6"#), 2)
        XCTAssertThrowsError(try store.dbQueue.write { db in try FieldRegistry.load(from: db).addIndex(over: ["material", "colour"], in: db) })

        // Unknown fields are reported with every known field, registered ones included.
        XCTAssertThrowsError(try store.parseQuery("defocuss < 0")) { error in
            XCTAssertTrue("\(error)".contains("unknown field 'defocuss'") && "\(error)".contains("defocus, aligned"), "\(error)")
        }
        XCTAssertThrowsError(try FrameQuery.parse("defocus < 0"))   // not without the catalog's registry
        XCTAssertThrowsError(try store.parseQuery("defocus is present"))
    }

    func testNamePatternsAndUnits() throws {
        let study = try NamePattern("{date:yyyyMMdd}_{material}_{support}_{magnification}kx_{dose_rate}e_{exposure}s_{index}")
        XCTAssertEqual(study.match("20221109_Au_UTC_330kx_2640e_0p1596s_03.dm3"),
                       ["date": "2022-11-09", "material": "Au", "support": "UTC", "magnification": "330", "dose_rate": "2640",
                        "exposure": "0p1596"])
        XCTAssertNil(study.match("20221309_Au_UTC_330kx_2640e_0p1596s_03.dm3"))   // month 13
        XCTAssertNil(study.match("lab_frame.dm3"))
        let lab = try NamePattern("{material}-{date:yyyy-MM-dd}-df{defocus}nm-n{index}")
        XCTAssertEqual(lab.match("CdSe-2024-03-01-df-50.5nm-n7.tif"), ["material": "CdSe", "date": "2024-03-01", "defocus": "-50.5"])
        XCTAssertThrowsError(try NamePattern("{material"))
        XCTAssertEqual(QueryValue(parsing: "0p1596", as: .number), .number(0.1596))
        XCTAssertEqual(QueryValue(parsing: "08/26/21", as: .date), .date("2021-08-26"))
        XCTAssertEqual(QueryValue(parsing: "yes", as: .boolean), .boolean(true))
        XCTAssertNil(QueryValue(parsing: "far", as: .number))

        XCTAssertEqual(UnitConversion.factor(from: "A", to: "nm"), 0.1)
        XCTAssertEqual(UnitConversion.factor(from: "pm", to: "nm/px"), 1e-3)
        XCTAssertEqual(UnitConversion.factor(from: "um", to: "nm"), 1000)
        XCTAssertEqual(UnitConversion.factor(from: "x", to: "kx"), 1e-3)
        XCTAssertEqual(UnitConversion.factor(from: "e/A2", to: "e/A^2"), 1)
        XCTAssertNil(UnitConversion.factor(from: "V", to: "nm"))
        XCTAssertEqual(CSVTable.detectSeparator(Data("a;b;\"c,d\"\n1;2;3".utf8)), ";")
        XCTAssertEqual(CSVTable.detectSeparator(Data("a\tb\n".utf8)), "\t")
        XCTAssertEqual(CSVTable.detectSeparator(Data("a,b\n".utf8)), ",")
    }
}
