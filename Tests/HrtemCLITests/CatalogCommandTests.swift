import Foundation
import TestSupport
import XCTest

/// `hrtem import-metadata`, `query` and `summary` through the built binary.
final class CatalogCommandTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = try makeTemporaryFolder("hrtem-catalog-cli")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func hrtem(_ arguments: [String]) throws -> CommandResult {
        try runHrtem(arguments + ["--data", folder.appendingPathComponent("data").path], in: folder)
    }

    private func referenceTable() throws -> String {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        return reference.appendingPathComponent("Dataset_metadata.csv").path
    }

    func testImportQueryAndSummaryOnTheStudyTable() throws {
        let table = try referenceTable()
        let first = try hrtem(["import-metadata", table])
        XCTAssertEqual(first.status, 0, first.standardError)
        XCTAssertTrue(first.standardOutput.contains("407 new, 0 changed, 0 unchanged; 11 new sessions"), first.standardOutput)
        XCTAssertEqual(first.standardError, "")

        let again = try hrtem(["import-metadata", table])
        XCTAssertEqual(again.status, 0, again.standardError)
        XCTAssertTrue(again.standardOutput.contains("0 new, 0 changed, 407 unchanged"), again.standardOutput)

        let ag = #"material = "Ag" and size = 5 and dose ~ 423 +- 20 and pixel_scale = 0.02"#
        let count = try hrtem(["query", ag, "--count"])
        XCTAssertEqual(count.status, 0, count.standardError)
        XCTAssertEqual(count.standardOutput, "14\n")

        let json = try hrtem(["query", ag, "--format", "json"])
        XCTAssertEqual(json.status, 0, json.standardError)
        let frames = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [[String: Any]])
        XCTAssertEqual(frames.count, 14)
        XCTAssertEqual(Set(frames.compactMap { $0["material"] as? String }), ["Ag"])
        XCTAssertEqual(Set(frames.compactMap { $0["magnification_kx"] as? Double }), [330])
        XCTAssertEqual(frames.first?["session"] as? String, "2022_02_02 5nm Ag nanoparticles on UTC")

        let csv = try hrtem(["query", #"session = "2021_08_26 5nm Au nanoparticles on C/Ultrathin Carbon""#, "--format", "csv"])
        XCTAssertEqual(csv.status, 0, csv.standardError)
        let lines = csv.standardOutput.split(separator: "\n")
        XCTAssertEqual(lines.count, 24)
        XCTAssertTrue(lines[0].hasPrefix("session,file,material,size_nm"), String(lines[0]))
        XCTAssertTrue(lines[1].hasPrefix("2021_08_26 5nm Au nanoparticles on C/Ultrathin Carbon,Au_UTC_205kX_2630e_0p1596s_01.dm3,Au,5,"),
                      String(lines[1]))

        let listing = try hrtem(["query", ag])
        XCTAssertTrue(listing.standardOutput.hasSuffix("14 frames\n"), listing.standardOutput)

        let summary = try hrtem(["summary", "--by", "material"])
        XCTAssertEqual(summary.status, 0, summary.standardError)
        let rows = summary.standardOutput.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        XCTAssertEqual(rows.first.map { $0.map(String.init) }, ["material", "frames", "labeled", "ingested"])
        XCTAssertTrue(rows.contains { $0.map(String.init) == ["Ag", "40", "0", "0"] }, summary.standardOutput)
        XCTAssertTrue(rows.contains { $0.map(String.init) == ["Au", "356", "0", "0"] }, summary.standardOutput)
        XCTAssertTrue(rows.contains { $0.map(String.init) == ["CdSe", "11", "0", "0"] }, summary.standardOutput)
        XCTAssertTrue(rows.contains { $0.map(String.init) == ["total", "407", "0", "0"] }, summary.standardOutput)

        let sessions = try hrtem(["summary"])
        XCTAssertEqual(sessions.standardOutput.split(separator: "\n").count, 2 + 11 + 1, sessions.standardOutput)
    }

    func testBadInputExitsNonZeroWithPosition() throws {
        let bad = folder.appendingPathComponent("bad.csv")
        try Data("""
        File name,Date,Material,Nanoparticle Size (nm),Nanoparticle Shape,Support,Instrument,Dosage (e/A2),Pixel Scale (nm),Folder
        a_01.dm3,08/26/21,Au,5,Sphere,UT Carbon,Team05,420,0.033,s1
        b_01.dm3,08/26/21,Au,five,Sphere,UT Carbon,Team05,420,0.033,s1

        """.utf8).write(to: bad)
        let result = try hrtem(["import-metadata", bad.path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.standardError.contains("bad.csv:3:4"), result.standardError)
        XCTAssertTrue(result.standardError.contains("'five' is not a number"), result.standardError)
        // Nothing was imported.
        let count = try hrtem(["query", "size > 0", "--count"])
        XCTAssertEqual(count.standardOutput, "0\n", count.standardError)

        let query = try hrtem(["query", #"material = "Au" and sise = 5"#])
        XCTAssertNotEqual(query.status, 0)
        XCTAssertTrue(query.standardError.contains("column 21: unknown field 'sise'"), query.standardError)
        XCTAssertTrue(query.standardError.contains("valid fields: material, size"), query.standardError)

        let missing = try hrtem(["import-metadata", folder.appendingPathComponent("nope.csv").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.standardError.contains("nope.csv"), missing.standardError)

        let by = try hrtem(["summary", "--by", "colour"])
        XCTAssertEqual(by.status, 64)
        XCTAssertTrue(by.standardError.contains("unknown field 'colour'"), by.standardError)
    }

    func testHelpHasExamples() throws {
        for command in ["import-metadata", "query", "summary"] {
            let help = try runHrtem([command, "--help"])
            XCTAssertEqual(help.status, 0, help.standardError)
            XCTAssertTrue(help.standardOutput.contains("Examples:"), command)
            XCTAssertTrue(help.standardOutput.contains("hrtem \(command)"), command)
        }
    }
}
