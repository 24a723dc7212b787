import Foundation
import Micrograph
import TestSupport
import XCTest

/// `hrtem ingest` and `hrtem show` through the built binary, on a folder laid out like the
/// NERSC mirror and made by hrtem's own writers.
final class IngestCommandTests: XCTestCase {
    var root: URL!
    var data: URL!

    override func setUpWithError() throws {
        root = try makeTemporaryFolder("hrtem-ingest")
        data = root.appendingPathComponent("hrtem-data")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    func frame(_ seed: Int) -> Raster<Float> {
        Raster(width: 32, height: 24, pixels: (0..<(32 * 24)).map { Float(($0 * 7 + seed * 13) % 101) })
    }

    func run(_ arguments: [String]) throws -> CommandResult {
        try runHrtem(arguments + ["--data", data.path])
    }

    func testIngestJoinsMetadataReadsLabelsIsIdempotentAndListsWhatItCannotPlace() throws {
        let mirror = root.appendingPathComponent("mirror")
        let session = "2022_11_09 Au on C/Ultrathin Carbon"       // a Folder with a '/' in it
        let sessionFolder = mirror.appendingPathComponent(session)
        let joined = "20221109_Au_UTC_330kx_2640e_0p1596s_03.dm3"
        let byName = "20221109_Au_UTC_330kx_2640e_0p1596s_04.dm4"
        try writeDM(frame(1), to: sessionFolder.appendingPathComponent(joined), version: .dm3, pixelSizeNM: 0.02,
                    tags: ["Microscope Info.Indicated Magnification": 330000, "Microscope Info.Voltage": 300000.0])
        try writeDM(frame(2), to: sessionFolder.appendingPathComponent(byName), version: .dm4, pixelSizeNM: 0.02)
        let mask = Raster(width: 32, height: 24, pixels: (0..<(32 * 24)).map { $0 % 10 == 0 ? UInt8(255) : 0 })
        try writePNG(gray8: mask, to: sessionFolder.appendingPathComponent("Labels/20221109_Au_UTC_330kx_2640e_0p1596s_03_label.png"))
        try writePNG(gray8: mask, to: sessionFolder.appendingPathComponent("Labels/orphan_label.png"))
        let other = mirror.appendingPathComponent("lab session")
        try writeDM(frame(3), to: other.appendingPathComponent("mystery.dm4"), pixelSizeNM: 0.026,
                    tags: ["Microscope Info.Indicated Magnification": 260000, "DataBar.Exposure Time (s)": 0.5])
        try writeTIFF(frame(4), to: other.appendingPathComponent("plain.tif"))
        try writeFileAtomically(Data("not a frame".utf8), to: other.appendingPathComponent("notes.txt"))
        try writeFileAtomically(Data("garbage that claims to be DM".utf8), to: other.appendingPathComponent("broken.dm3"))

        let table = root.appendingPathComponent("metadata.csv")
        try writeFileAtomically(Data("""
            File name,Date,Material,Nanoparticle Size (nm),Nanoparticle Shape,Support,Instrument,Dosage (e/A2),Pixel Scale (nm),Folder
            \(joined),11/09/22,Au,2.2,Sphere,UT Carbon,Team05,421,0.02,\(session)

            """.utf8), to: table)
        let imported = try run(["import-metadata", table.path])
        XCTAssertEqual(imported.status, 0, imported.standardError)

        let first = try run(["ingest", mirror.path, "--jobs", "2"])
        XCTAssertEqual(first.status, 0, first.standardError)
        let out = first.standardOutput
        XCTAssertTrue(out.contains("5 frame file(s): 3 new, 1 joined to the metadata table, 0 changed, 0 unchanged"), out)
        XCTAssertTrue(out.contains("labels: 1 new"), out)
        XCTAssertTrue(out.contains("1 from table") && out.contains("1 from file name") && out.contains("1 from file tags"), out)
        // A readable frame with no metadata at all is cataloged with what the file says.
        XCTAssertTrue(out.contains("1 from file,") || out.contains("1 from file)"), out)
        for unplaced in ["notes.txt", "broken.dm3", "orphan_label.png"] {
            XCTAssertTrue(out.contains(unplaced), "\(unplaced) must be listed as unplaced:\n\(out)")
        }
        XCTAssertFalse(out.contains("plain.tif"), out)
        XCTAssertTrue(out.contains("could not place 3 file(s)"), out)
        let plain = try run(["show", "lab session/plain.tif"])
        XCTAssertEqual(plain.status, 0, plain.standardError)
        XCTAssertTrue(plain.standardOutput.contains("32 x 24"), plain.standardOutput)
        let gaps = try run(["query", "dose is missing", "--count"])
        XCTAssertEqual(gaps.standardOutput, "2\n", gaps.standardError)   // mystery.dm4 and plain.tif

        // show: table metadata, file facts, the label, and DM tags by path.
        let shown = try run(["show", joined])
        XCTAssertEqual(shown.status, 0, shown.standardError)
        let text = shown.standardOutput
        let digest = try sha256Hex(fileAt: sessionFolder.appendingPathComponent(joined))
        XCTAssertTrue(text.contains(digest), text)
        XCTAssertTrue(text.contains("particle size         2.2 nm"), text)
        XCTAssertTrue(text.contains("32 x 24 float32"), text)
        XCTAssertTrue(text.contains("\(mask.pixels.filter { $0 != 0 }.count) particle pixels"), text)
        XCTAssertTrue(text.contains("ImageList.2.ImageTags.Microscope Info.Indicated Magnification = 330000"), text)
        XCTAssertTrue(text.contains("metadata table"), text)
        let mystery = try run(["show", "lab session/mystery.dm4"])
        XCTAssertTrue(mystery.standardOutput.contains("magnification         260 kx"), mystery.standardOutput)
        XCTAssertTrue(mystery.standardOutput.contains("pixel scale           0.026"), mystery.standardOutput)
        let named = try run(["show", byName])
        XCTAssertTrue(named.standardOutput.contains("dose rate             2640 e/A^2/s"), named.standardOutput)
        let missing = try run(["show", "no-such-frame.dm3"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.standardError.contains("no such frame"), missing.standardError)

        // Idempotent: nothing changes the second time.
        let second = try run(["ingest", mirror.path])
        XCTAssertEqual(second.status, 0, second.standardError)
        XCTAssertTrue(second.standardOutput.contains("0 new, 0 joined to the metadata table, 0 changed, 4 unchanged"), second.standardOutput)
        XCTAssertTrue(second.standardOutput.contains("labels: 0 new, 0 changed, 1 unchanged"), second.standardOutput)
        XCTAssertTrue(second.standardOutput.contains("hashed 0.0 MB"), "unchanged files are not hashed again: \(second.standardOutput)")

        // A rewritten file is noticed.
        Thread.sleep(forTimeInterval: 0.05)
        try writeDM(frame(9), to: other.appendingPathComponent("mystery.dm4"), pixelSizeNM: 0.026,
                    tags: ["Microscope Info.Indicated Magnification": 260000])
        let third = try run(["ingest", mirror.path])
        XCTAssertTrue(third.standardOutput.contains("1 changed, 3 unchanged"), third.standardOutput)
        let query = try run(["query", "labeled", "--count"])
        XCTAssertEqual(query.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines), "1", query.standardError)
    }

    func testIngestRejectsAMissingFolder() throws {
        let result = try run(["ingest", root.appendingPathComponent("absent").path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.standardError.contains("not a folder"), result.standardError)
    }
}
