import Catalog
import TestSupport
import XCTest

final class FrameQueryTests: XCTestCase {
    private func makeStore() throws -> CatalogStore {
        let store = try CatalogStore()
        try store.insertFrames([
            FrameRecord(session: "A", fileName: "a1.dm3", metadataRow: 1, material: "Au", particleSizeNm: 5, shape: "Sphere",
                        support: "UT Carbon", dose: 423, doseRate: 2650, exposureSeconds: 0.1596, pixelScaleNm: 0.02,
                        magnificationKx: 330, date: "2021-10-06"),
            FrameRecord(session: "A", fileName: "a2.dm3", metadataRow: 2, material: "Au", particleSizeNm: 2.2, support: "SiN",
                        dose: 440, pixelScaleNm: 0.026, magnificationKx: 260, date: "2021-10-06"),
            FrameRecord(session: "B/with space", fileName: "b1.dm3", metadataRow: 3, material: "Ag", particleSizeNm: 5,
                        support: "UT Carbon", dose: 404, pixelScaleNm: 0.02, date: "2022-02-02"),
            FrameRecord(session: "B/with space", fileName: "b2.dm3", metadataRow: 4, material: "Ag", particleSizeNm: 10,
                        dose: 80, pixelScaleNm: 0.042, date: "2022-02-02"),
            FrameRecord(session: "C", fileName: "c1.dm3", metadataRow: 5, material: "CdSe", particleSizeNm: 20,
                        dose: 884, date: "2023-01-23"),
            FrameRecord(session: "C", fileName: "unknown.dm3", metadataRow: 6),
        ])
        return store
    }

    private func files(_ store: CatalogStore, _ query: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        do { return try store.frames(matching: query).map(\.fileName) } catch {
            XCTFail("\(error)", file: file, line: line)
            return []
        }
    }

    func testSelectionSemantics() throws {
        let store = try makeStore()
        XCTAssertEqual(files(store, #"material = "Au""#), ["a1.dm3", "a2.dm3"])
        XCTAssertEqual(files(store, "material = Au"), ["a1.dm3", "a2.dm3"])
        XCTAssertEqual(files(store, #"MATERIAL == "Ag" AND size = 5"#), ["b1.dm3"])
        XCTAssertEqual(files(store, "size in (2.2, 5, 10)"), ["a1.dm3", "a2.dm3", "b1.dm3", "b2.dm3"])
        XCTAssertEqual(files(store, "size = 5.000001"), ["a1.dm3", "b1.dm3"], "inside the 1e-5 margin")
        XCTAssertEqual(files(store, "size = 5.0001"), [], "outside the 1e-5 margin")
        // |x - V| < M is strict: 423 - 20 = 403 < 404 selected, 440 - 423 = 17 selected.
        XCTAssertEqual(files(store, "dose ~ 423 +- 20"), ["a1.dm3", "a2.dm3", "b1.dm3"])
        XCTAssertEqual(files(store, "dose ~ 424 +- 20"), ["a1.dm3", "a2.dm3"], "404 is exactly at the margin: excluded")
        XCTAssertEqual(files(store, "dose ~ 423 ± 20 and pixel_scale = 0.02"), ["a1.dm3", "b1.dm3"])
        XCTAssertEqual(files(store, "dose between 80 and 404"), ["b1.dm3", "b2.dm3"])
        XCTAssertEqual(files(store, "dose > 440 or dose < 80.5"), ["b2.dm3", "c1.dm3"])
        XCTAssertEqual(files(store, "dose >= 440"), ["a2.dm3", "c1.dm3"])
        XCTAssertEqual(files(store, #"material = "Au" and (size = 2.2 or support = "UT Carbon")"#), ["a1.dm3", "a2.dm3"])
        XCTAssertEqual(files(store, #"material = "Au" and size = 2.2 or support = "UT Carbon""#), ["a1.dm3", "a2.dm3", "b1.dm3"])
        XCTAssertEqual(files(store, #"session = "B/with space""#), ["b1.dm3", "b2.dm3"])
        XCTAssertEqual(files(store, #"file = "c1.dm3""#), ["c1.dm3"])
        XCTAssertEqual(files(store, "magnification = 330 and exposure ~ 0.16 +- 0.001 and dose_rate > 2000"), ["a1.dm3"])
        XCTAssertEqual(files(store, "shape = Sphere and instrument != Team05"), ["a1.dm3"])
    }

    func testNegationIsTheComplementIncludingUnknowns() throws {
        let store = try makeStore()
        XCTAssertEqual(files(store, #"not material = "Au""#), ["b1.dm3", "b2.dm3", "c1.dm3", "unknown.dm3"])
        XCTAssertEqual(files(store, #"material != "Au""#), ["b1.dm3", "b2.dm3", "c1.dm3", "unknown.dm3"])
        XCTAssertEqual(files(store, "size not in (5, 2.2)"), ["b2.dm3", "c1.dm3", "unknown.dm3"])
        XCTAssertEqual(files(store, "not not size = 20"), ["c1.dm3"])
        XCTAssertEqual(files(store, "dose not between 100 and 900"), ["b2.dm3", "unknown.dm3"])
    }

    func testDatesInBothNotations() throws {
        let store = try makeStore()
        XCTAssertEqual(files(store, "date = 2021-10-06"), ["a1.dm3", "a2.dm3"])
        XCTAssertEqual(files(store, "date = 10/06/21"), ["a1.dm3", "a2.dm3"])
        XCTAssertEqual(files(store, #"date = "10/06/21""#), ["a1.dm3", "a2.dm3"])
        XCTAssertEqual(files(store, "date > 2021-12-31"), ["b1.dm3", "b2.dm3", "c1.dm3"])
        XCTAssertEqual(files(store, "date between 01/01/22 and 2022-12-31"), ["b1.dm3", "b2.dm3"])
        XCTAssertEqual(files(store, "date in (2023-01-23, 02/02/22)"), ["b1.dm3", "b2.dm3", "c1.dm3"])
    }

    func testValuesAreBoundNeverSpliced() throws {
        let store = try makeStore()
        let nasty = #"Au"; drop table frames; --"#
        try store.upsertFrame(FrameRecord(session: "X", fileName: "evil.dm3", material: nasty))
        let query = #"material = "Au\"; drop table frames; --""#
        let compiled = try FrameQuery.parse(query).compile()
        XCTAssertFalse(compiled.sql.contains("drop"), compiled.sql)
        XCTAssertEqual(files(store, query), ["evil.dm3"])
        XCTAssertEqual(files(store, #"material = 'Au"; drop table frames; --'"#), ["evil.dm3"])
        XCTAssertEqual(try store.allFrames().count, 7, "the frames table is still there")
        XCTAssertEqual(files(store, #"material = "it's \\ a \'test\'""#), [])
    }

    func testCompiledSQLUsesPlaceholders() throws {
        let compiled = try FrameQuery.parse(#"material = "Au" and size in (2.2, 5) and dose ~ 423 +- 20"#).compile()
        XCTAssertEqual(compiled.sql.filter { $0 == "?" }.count, 7)
        XCTAssertFalse(compiled.sql.contains("Au"))
        XCTAssertFalse(compiled.sql.contains("423"))
    }

    /// Every kind of malformed query: the error names the column where it went wrong.
    func testMalformedQueriesPointAtTheirColumn() {
        let cases: [(String, Int, String)] = [
            ("", 1, "empty query"),
            ("   ", 4, "empty query"),
            (#"matrial = "Au""#, 1, "unknown field 'matrial'"),
            (#"material = "Au" and sise = 5"#, 21, "unknown field 'sise'"),
            (#"material = "Au"#, 12, "unterminated string"),
            (#"material "Au""#, 10, "expected an operator"),
            ("material = ", 12, "found the end of the query"),
            ("size = Au", 8, "size expects a number"),
            ("material = 5", 12, "material expects a quoted string"),
            ("size = 5 and", 13, "expected a field name"),
            ("size = 5 size = 2", 10, "expected 'and', 'or'"),
            ("(size = 5", 1, "unclosed '('"),
            ("size = 5)", 9, "unbalanced ')'"),
            ("()", 2, "empty parentheses"),
            ("size in ()", 10, "empty list"),
            ("size in (5, 2", 14, "expected ',' or ')'"),
            ("size in 5", 9, "expected '(' after 'in'"),
            ("dose ~ 423", 11, "expected '+-'"),
            ("dose ~ 423 +- 0", 15, "margin must be positive"),
            ("dose ~ 423 +- -5", 15, "margin must be positive"),
            ("dose ~ +- 20", 8, "expected a number after '~'"),
            (#"material ~ "Au" +- 1"#, 10, "needs a numeric field"),
            (#"material < "Au""#, 10, "does not apply to material"),
            ("dose between 5", 15, "expected 'and' in 'between"),
            ("dose between 500 and 100", 14, "empty range"),
            (#"material between "a" and "b""#, 10, "needs a numeric or date field"),
            ("size = 5nm", 8, "malformed number"),
            ("size = 1.2.3", 8, "malformed number"),
            ("size = 5 & dose = 2", 10, "unexpected character '&'"),
            ("size = 5; drop table frames", 9, "unexpected ';'"),
            ("date = 2021-02-30", 8, "date expects a date"),
            (#"date = "yesterday""#, 8, "is not a date"),
            ("labeled = maybe", 11, "true or false"),
            ("labeled > true", 9, "does not apply to labeled"),
            ("size not = 5", 10, "expected 'in' or 'between'"),
            (#"material = "a\qb""#, 14, "unknown escape"),
            ("and size = 5", 1, "expected a field name"),
            ("size = 5 or or dose = 1", 13, "expected a field name"),
        ]
        for (query, column, fragment) in cases {
            XCTAssertThrowsError(try FrameQuery.parse(query), query) { error in
                guard let error = error as? QueryError else { return XCTFail("\(query): \(error)") }
                XCTAssertEqual(error.column, column, "\(query): \(error)")
                XCTAssertTrue(error.message.contains(fragment), "\(query): \(error.message)")
            }
        }
    }

    func testErrorTextShowsCaretAndValidFields() {
        XCTAssertThrowsError(try FrameQuery.parse(#"material = "Au" and sise = 5"#)) { error in
            let text = String(describing: error)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(lines[0], "query error at column 21: unknown field 'sise'")
            XCTAssertEqual(lines[1], #"  material = "Au" and sise = 5"#)
            XCTAssertEqual(lines[2], "  " + String(repeating: " ", count: 20) + "^")
            XCTAssertTrue(lines[3].hasPrefix("valid fields: material, size, shape, support, instrument, dose, dose_rate"),
                          lines[3])
            for field in ["pixel_scale", "magnification", "session", "date", "file", "labeled"] {
                XCTAssertTrue(lines[3].contains(field), field)
            }
        }
    }

    func testParsedTreeAndPrecedence() throws {
        let query = try FrameQuery.parse("not size = 5 and dose ~ 1 +- 2 or labeled")
        XCTAssertEqual(query.expression,
                       .or(.and(.not(.compare(.size, .equal, .number(5))), .near(.dose, value: 1, margin: 2)),
                           .compare(.labeled, .equal, .boolean(true))))
    }
}
