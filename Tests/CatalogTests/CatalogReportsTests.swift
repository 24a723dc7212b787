import Catalog
import Foundation
import TestSupport
import XCTest

final class CatalogReportsTests: XCTestCase {
    func testSummaryGroupsCountsLabelsAndFilters() throws {
        let store = try CatalogStore()
        try store.insertFrames([
            FrameRecord(session: "s1", fileName: "a", material: "Au", particleSizeNm: 5),
            FrameRecord(session: "s1", fileName: "b", material: "Au", particleSizeNm: 2.2, sha256: "x"),
            FrameRecord(session: "s2", fileName: "c", material: "Ag", particleSizeNm: 5),
            FrameRecord(session: "s2", fileName: "d"),
        ])
        let labeledFrame = try XCTUnwrap(store.frame(session: "s1", file: "a"))
        try store.upsertLabel(LabelRecord(frameId: labeledFrame.id!, source: "png"))

        let byMaterial = try CatalogSummary.compute(in: store, by: [.material])
        XCTAssertEqual(byMaterial.groups.map(\.values), [[""], ["Ag"], ["Au"]])
        XCTAssertEqual(byMaterial.groups.map(\.frames), [1, 1, 2])
        XCTAssertEqual(byMaterial.groups.map(\.labeled), [0, 0, 1])
        XCTAssertEqual(byMaterial.groups.map(\.ingested), [0, 0, 1])
        XCTAssertTrue(byMaterial.table.contains("(none)"))
        XCTAssertTrue(byMaterial.table.split(separator: "\n").last!.hasPrefix("total"))

        let filtered = try CatalogSummary.compute(in: store, by: [.session, .size], where: FrameQuery.parse("size >= 5"))
        XCTAssertEqual(filtered.groups.map(\.values), [["s1", "5"], ["s2", "5"]])
        let byLabel = try CatalogSummary.compute(in: store, by: [.labeled])
        XCTAssertEqual(byLabel.groups.map(\.values), [["no"], ["yes"]])
        XCTAssertEqual(byLabel.groups.map(\.frames), [3, 1])
        let empty = try CatalogSummary.compute(in: store, by: [], where: FrameQuery.parse("size > 100"))
        XCTAssertEqual(empty.groups, [])
    }

    func testListingQuotesCSVAndWritesValidJSON() throws {
        let frame = FrameRecord(id: 7, session: #"a, "quoted" session"#, fileName: "f.dm3", material: "Au",
                                particleSizeNm: 2.2, dose: 423, pixelScaleNm: 0.02)
        let csv = try FrameListing.render([frame], as: .csv)
        let lines = csv.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[1].hasPrefix(#""a, ""quoted"" session",f.dm3,Au,2.2,,,,423,,,0.02,"#), String(lines[1]))
        let parsed = try CSVTable(data: Data(csv.utf8), file: "listing.csv")
        XCTAssertEqual(parsed.records[1].fields[0], frame.session)
        let json = try FrameListing.render([frame], as: .json)
        let objects = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        XCTAssertEqual(objects.first?["session"] as? String, frame.session)
        XCTAssertEqual(objects.first?["pixel_scale_nm"] as? Double, 0.02)
        XCTAssertEqual(objects.first?["id"] as? Int, 7)
        XCTAssertTrue(try FrameListing.render([frame, frame], as: .table).hasSuffix("2 frames\n"))
    }

    func testTablesAlignByCharactersWhateverTheirBytes() {
        let table = TextTable.render(header: ["name", "value"], rows: [["Å µm", "1"], [String(repeating: "x", count: 70), "22"], ["a", "333"]])
        let lines = table.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 5)
        XCTAssertEqual(lines[0], "name" + String(repeating: " ", count: 68) + "value")
        XCTAssertEqual(lines[1], String(repeating: "-", count: 70) + "  -----")
        XCTAssertEqual(lines[2], "Å µm" + String(repeating: " ", count: 68) + "1")
        XCTAssertEqual(lines[3], String(repeating: "x", count: 70) + "  22")
        XCTAssertEqual(lines[4], "a" + String(repeating: " ", count: 71) + "333")
    }

    func testStudyDates() {
        XCTAssertEqual(StudyDate.iso(fromStudy: "08/26/21"), "2021-08-26")
        XCTAssertEqual(StudyDate.iso(fromStudy: "2/2/22"), "2022-02-02")
        XCTAssertEqual(StudyDate.iso(fromStudy: "02/29/24"), "2024-02-29")
        XCTAssertNil(StudyDate.iso(fromStudy: "02/29/23"))
        XCTAssertNil(StudyDate.iso(fromStudy: "13/01/21"))
        XCTAssertNil(StudyDate.iso(fromStudy: "2021-08-26"))
        XCTAssertEqual(StudyDate.iso(from: "2021-08-26"), "2021-08-26")
        XCTAssertNil(StudyDate.iso(from: "2021-8-26"))
        XCTAssertEqual(CatalogStore.sessionDate(fromFolder: "2021_08_26 5nm Au nanoparticles on C/Ultrathin Carbon"),
                       "2021-08-26")
        XCTAssertNil(CatalogStore.sessionDate(fromFolder: "noise series"))
    }
}
