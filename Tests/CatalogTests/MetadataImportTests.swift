import Catalog
import GRDB
import Micrograph
import TestSupport
import XCTest

final class MetadataImportTests: XCTestCase {
    private func referenceTable() throws -> Data {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        return try Data(contentsOf: reference.appendingPathComponent("Dataset_metadata.csv"))
    }

    private let header = MetadataImporter.header.joined(separator: ",")
    private let goodRow = "20220202_Ag_UTC_330kx_2650e_0p1596s_01.dm3,02/02/22,Ag,5,Sphere,UT Carbon,Team05,423,0.02,\"2022_02_02 5nm Ag, on UTC\""

    func testReferenceTableKnownAnswers() throws {
        let data = try referenceTable()
        let store = try CatalogStore()
        let report = try MetadataImporter.importTable(data, source: "Dataset_metadata.csv", into: store)
        XCTAssertEqual(report.rows, 407)
        XCTAssertEqual(report.inserted, 407)
        XCTAssertEqual(report.sessionsCreated, 11)
        XCTAssertEqual(report.warnings, [], "the study's doses agree with rate x exposure within 1%")
        XCTAssertEqual(try store.allFrames().count, 407)
        XCTAssertEqual(try store.sessions().count, 11)
        let repeated = try store.dbQueue.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM (SELECT file_name FROM frames GROUP BY file_name HAVING count(DISTINCT session) > 1)")
        }
        XCTAssertEqual(repeated, 14)
        let agFrames = try store.frames(matching: #"material = "Ag" and size = 5 and dose ~ 423 +- 20 and pixel_scale = 0.02"#)
        XCTAssertEqual(agFrames.count, 14)
        // Selection keeps the table's row order; every selected frame satisfies the rule.
        XCTAssertEqual(agFrames.map(\.metadataRow), agFrames.map(\.metadataRow).sorted { ($0 ?? 0) < ($1 ?? 0) })
        for frame in agFrames {
            XCTAssertEqual(frame.material, "Ag")
            XCTAssertLessThan(abs(frame.dose! - 423), 20)
            XCTAssertEqual(frame.magnificationKx, 330)
            XCTAssertEqual(frame.doseRate, 2650)
        }
        let first = try XCTUnwrap(store.frame(session: "2021_08_26 5nm Au nanoparticles on C/Ultrathin Carbon",
                                              file: "Au_UTC_205kX_2630e_0p1596s_01.dm3"))
        XCTAssertEqual(first.date, "2021-08-26")
        XCTAssertEqual(first.metadataRow, 1)
        XCTAssertEqual(first.magnificationKx, 205)
        XCTAssertEqual(first.exposureSeconds, 0.1596)
        XCTAssertEqual(first.support, "UT Carbon")
        XCTAssertEqual(try store.count(matching: "date = 08/26/21"), 23)
    }

    func testReimportChangesNothingAndChangedRowsAreReported() throws {
        let data = try referenceTable()
        let store = try CatalogStore()
        _ = try MetadataImporter.importTable(data, source: "Dataset_metadata.csv", into: store)
        let before = try store.allFrames()
        let again = try MetadataImporter.importTable(data, source: "Dataset_metadata.csv", into: store)
        XCTAssertEqual(again.inserted, 0)
        XCTAssertEqual(again.changed.count, 0)
        XCTAssertEqual(again.unchanged, 407)
        XCTAssertEqual(again.sessionsCreated, 0)
        XCTAssertTrue(again.summary.contains("0 changed"), again.summary)
        XCTAssertEqual(try store.allFrames(), before)

        // Change one dose (line 3 of the file = data row 2) and one shape.
        var lines = String(decoding: data, as: UTF8.self).components(separatedBy: "\n")
        lines[2] = lines[2].replacingOccurrences(of: ",420,", with: ",421,")
        lines[5] = lines[5].replacingOccurrences(of: ",Sphere,", with: ",Oblong,")
        let changed = try MetadataImporter.importTable(Data(lines.joined(separator: "\n").utf8),
                                                      source: "Dataset_metadata.csv", into: store)
        XCTAssertEqual(changed.changed.map(\.line), [3, 6])
        XCTAssertEqual(changed.changed[0].fields.map(\.name), ["dose"])
        XCTAssertEqual(changed.changed[0].fields[0].new, "421")
        XCTAssertEqual(changed.changed[1].fields.map(\.name), ["shape"])
        XCTAssertEqual(changed.unchanged, 405)
        XCTAssertEqual(try store.frame(id: before[1].id!)?.dose, 421)
        XCTAssertEqual(try store.frame(id: before[1].id!)?.id, before[1].id, "identity kept")
    }

    func testImportNeverTouchesIngestedFileColumns() throws {
        let store = try CatalogStore()
        let data = Data((header + "\n" + goodRow + "\n").utf8)
        _ = try MetadataImporter.importTable(data, source: "t.csv", into: store)
        var frame = try XCTUnwrap(store.allFrames().first)
        frame.sha256 = "abc"
        frame.path = "store/ab/abc"
        try store.upsertFrame(frame)
        let changed = Data((header + "\n" + goodRow.replacingOccurrences(of: ",423,", with: ",424,") + "\n").utf8)
        let report = try MetadataImporter.importTable(changed, source: "t.csv", into: store)
        XCTAssertEqual(report.changed.count, 1)
        let after = try XCTUnwrap(store.allFrames().first)
        XCTAssertEqual(after.sha256, "abc")
        XCTAssertEqual(after.path, "store/ab/abc")
        XCTAssertEqual(after.dose, 424)
    }

    func testQuotedFieldsAndWarnings() throws {
        let store = try CatalogStore()
        let rows = [
            goodRow,
            // Dose disagrees with 2650 x 0.1596 = 422.9 by more than 1%.
            "20220202_Ag_UTC_330kx_2650e_0p1596s_02.dm3,02/02/22,Ag,5,Sphere,UT Carbon,Team05,440,0.02,\"2022_02_02 5nm Ag, on UTC\"",
            // Not the convention: imported, with a warning.
            "odd name.dm3,02/02/22,Ag,5,Sphere,\"UT \"\"Carbon\"\"\",Team05,423,0.02,other",
        ]
        let report = try MetadataImporter.importTable(Data((header + "\r\n" + rows.joined(separator: "\r\n")).utf8),
                                                      source: "t.csv", into: store)
        XCTAssertEqual(report.inserted, 3)
        XCTAssertEqual(report.warnings.count, 2, "\(report.warnings)")
        XCTAssertTrue(report.warnings[0].hasPrefix("t.csv:3: dose 440"), report.warnings[0])
        XCTAssertTrue(report.warnings[1].hasPrefix("t.csv:4:"), report.warnings[1])
        XCTAssertEqual(try store.frame(session: "2022_02_02 5nm Ag, on UTC",
                                       file: "20220202_Ag_UTC_330kx_2650e_0p1596s_01.dm3")?.pixelScaleNm, 0.02)
        let odd = try XCTUnwrap(store.frame(session: "other", file: "odd name.dm3"))
        XCTAssertEqual(odd.support, #"UT "Carbon""#)
        XCTAssertNil(odd.magnificationKx)
    }

    /// Bad input: an error naming line and column, and the catalog exactly as it was.
    func testBadTablesImportNothing() throws {
        let store = try CatalogStore()
        _ = try MetadataImporter.importTable(Data((header + "\n" + goodRow + "\n").utf8), source: "seed.csv", into: store)
        let before = try store.allFrames()
        let other = "20220202_Ag_UTC_330kx_2650e_0p1596s_09.dm3,02/02/22,Ag,5,Sphere,UT Carbon,Team05,423,0.02,new session"
        let cases: [(String, Int, Int, String)] = [
            (header.replacingOccurrences(of: "Material", with: "Materal") + "\n" + other, 1, 3, "wrong header"),
            (header.replacingOccurrences(of: ",Folder", with: "") + "\n" + other, 1, 10, "wrong header"),
            (header + ",Extra\n" + other, 1, 11, "unexpected column"),
            (header + "\n" + other + "\n" + other.replacingOccurrences(of: "_09.dm3,", with: "_10.dm3,").replacingOccurrences(of: ",423,", with: ",4x3,"), 3, 8, "'4x3' is not a number"),
            (header + "\n" + other.replacingOccurrences(of: ",5,", with: ",-5,"), 2, 4, "must be positive"),
            (header + "\n" + other.replacingOccurrences(of: "02/02/22", with: "02/30/22"), 2, 2, "not a date"),
            (header + "\n" + other.replacingOccurrences(of: "02/02/22", with: "2022-02-02"), 2, 2, "not a date"),
            (header + "\n" + other + "\n" + "a.dm3,02/02/22,Ag,5", 3, 5, "expected 10 fields, found 4"),
            (header + "\n" + other + ",x", 2, 11, "expected 10 fields, found 11"),
            (header + "\n" + other + "\n" + other, 3, 1, "duplicate frame"),
            (header + "\n" + other.replacingOccurrences(of: ",new session", with: ","), 2, 10, "value is required"),
            (header + "\n" + other.replacingOccurrences(of: "Sphere", with: "\"Sph\"ere"), 2, 5, "after a closing quote"),
            (header + "\n" + other.replacingOccurrences(of: "Sphere", with: "Sph\"ere"), 2, 5, "unexpected '\"'"),
            (header + "\n" + other + "\n" + "\"unclosed,02/02/22", 3, 1, "unclosed quote"),
            ("", 1, 1, "empty file"),
        ]
        for (text, line, column, fragment) in cases {
            XCTAssertThrowsError(try MetadataImporter.importTable(Data(text.utf8), source: "bad.csv", into: store),
                                 fragment) { error in
                guard let error = error as? FormatError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.file, "bad.csv")
                XCTAssertEqual(error.line, line, "\(fragment): \(error)")
                XCTAssertEqual(error.column, column, "\(fragment): \(error)")
                XCTAssertTrue(error.message.contains(fragment), "\(fragment): \(error)")
            }
        }
        XCTAssertEqual(try store.allFrames(), before)
        XCTAssertEqual(try store.sessions().map(\.folder), ["2022_02_02 5nm Ag, on UTC"])
    }
}
