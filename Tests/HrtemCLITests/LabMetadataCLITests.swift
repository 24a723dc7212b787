import Foundation
import Micrograph
import TestSupport
import XCTest

/// A lab's own data through the built binary, as a new user would bring it: frames named in
/// the lab's convention, a `;`-separated table with its own header and a custom column, the
/// field registry, queries, `set`, provenance and `matrix --split-by`.
final class LabMetadataCLITests: XCTestCase {
    var root: URL!
    var data: URL!

    override func setUpWithError() throws {
        root = try makeTemporaryFolder("hrtem-lab-metadata")
        data = root.appendingPathComponent("hrtem-data")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    func run(_ arguments: [String]) throws -> CommandResult {
        try runHrtem(arguments + ["--data", data.path], in: root)
    }

    /// Eight 64 x 64 Au frames in `lab/run1`, named `Au-2024-03-01-n0K.dm3`, each with a
    /// label, a voltage, an operator and a stage tilt in its tags.
    func makeLabFrames() throws -> URL {
        let lab = root.appendingPathComponent("lab")
        let run = lab.appendingPathComponent("run1")
        for index in 1...8 {
            let name = "Au-2024-03-01-n0\(index)"
            let raster = Raster(width: 64, height: 64, pixels: (0..<(64 * 64)).map { Float(($0 * 7 + index * 13) % 101) })
            try writeDM(raster, to: run.appendingPathComponent(name + ".dm3"), version: .dm3, pixelSizeNM: 0.05,
                        tags: ["Microscope Info.Voltage": 300_000.0, "Session Info.Operator": "ada",
                               "Microscope Info.Stage Position.Stage Alpha": 1.5])
            let mask = Raster(width: 64, height: 64, pixels: (0..<(64 * 64)).map { ($0 / 64) % 16 < 6 ? UInt8(255) : 0 })
            try writePNG(gray8: mask, to: run.appendingPathComponent("Labels/\(name)_label.png"))
        }
        return lab
    }

    static let pattern = "{material}-{date:yyyy-MM-dd}-n{index}"

    /// Defocus in angstrom: about -50 nm for frames 1-4, about -100 nm for 5-8.
    func writeTable(_ name: String, defocusOfFirst: String = "-500", extraRows: String = "") throws -> URL {
        let defocus = [defocusOfFirst, "-500", "-510", "-505", "-1000", "-1000", "-1010", "-1005"]
        var text = "Run;Image;Dose (e/A2);Defocus [A];Notes\n"
        for index in 1...8 {
            text += "run1;Au-2024-03-01-n0\(index).dm3;\(index <= 4 ? 400 : 800);\(defocus[index - 1]);slide \(index)\n"
        }
        text += extraRows
        let url = root.appendingPathComponent(name)
        try writeFileAtomically(Data(text.utf8), to: url)
        return url
    }

    func writeMapping() throws -> URL {
        let url = root.appendingPathComponent("mapping.json")
        try writeFileAtomically(Data(#"{"columns": {"Run": "folder", "Image": "file", "Defocus [A]": "defocus:A"}}"#.utf8), to: url)
        return url
    }

    func count(_ query: String) throws -> String {
        let result = try run(["query", query, "--count"])
        XCTAssertEqual(result.status, 0, result.standardError)
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testALabsFramesTableAndQuestionsThroughTheCLI() throws {
        let lab = try makeLabFrames()
        let added = try run(["field", "add", "defocus", "--type", "number", "--unit", "nm", "--describe", "objective defocus"])
        XCTAssertEqual(added.status, 0, added.standardError)
        let list = try run(["field", "list"])
        XCTAssertTrue(list.standardOutput.contains("defocus") && list.standardOutput.contains("objective defocus"), list.standardOutput)
        let again = try run(["field", "add", "defocus", "--type", "text"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.standardError.contains("exists already"), again.standardError)

        // Frames that follow no study convention are cataloged with what their names and tags say.
        let ingested = try run(["ingest", lab.path, "--name-pattern", Self.pattern])
        XCTAssertEqual(ingested.status, 0, ingested.standardError)
        XCTAssertTrue(ingested.standardOutput.contains("8 frame file(s): 8 new"), ingested.standardOutput)
        XCTAssertTrue(ingested.standardOutput.contains("labels: 8 new"), ingested.standardOutput)
        XCTAssertEqual(try count(#"material = "Au" and date = 2024-03-01"#), "8")
        XCTAssertEqual(try count(#"voltage = 300 and operator = "ada" and tilt ~ 1.5 +- 0.01"#), "8")
        XCTAssertEqual(try count("defocus is missing"), "8")

        // The lab's table: ';'-separated, units in the headers, a custom column, a mapping file.
        let table = try writeTable("lab.csv")
        let mapping = try writeMapping()
        let imported = try run(["import-metadata", table.path, "--mapping", mapping.path])
        XCTAssertEqual(imported.status, 0, imported.standardError)
        XCTAssertTrue(imported.standardOutput.contains("8 rows from lab.csv: 8 matched, 0 new"), imported.standardOutput)
        XCTAssertTrue(imported.standardOutput.contains("unmapped columns") && imported.standardOutput.contains("Notes"),
                      imported.standardOutput)
        XCTAssertEqual(try count("defocus ~ -50 +- 2"), "4")     // -500 A is -50 nm
        XCTAssertEqual(try count("defocus < -90 and dose = 800"), "4")
        XCTAssertEqual(try count("defocus is not missing and voltage = 300"), "8")
        XCTAssertEqual(try count("not defocus between -60 and -40"), "4")

        let shown = try run(["show", "Au-2024-03-01-n01.dm3"])
        XCTAssertEqual(shown.status, 0, shown.standardError)
        for expected in ["defocus = -50 nm  <- table: lab.csv line 2", "voltage = 300 kV  <- tag: ImageList.",
                         "material = Au  <- name: \(Self.pattern)", "operator = ada  <- tag:"] {
            XCTAssertTrue(shown.standardOutput.contains(expected), "missing '\(expected)' in\n\(shown.standardOutput)")
        }
        let byDefocus = try run(["summary", "--by", "defocus"])
        XCTAssertTrue(byDefocus.standardOutput.contains("-100.5"), byDefocus.standardOutput)
        let gaps = try run(["summary", "--missing"])
        let gapRows = gaps.standardOutput.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertTrue(gapRows.contains(["defocus", "number", "nm", "8", "0"]), gaps.standardOutput)
        XCTAssertTrue(gapRows.contains(["size", "number", "nm", "0", "8"]), gaps.standardOutput)

        // Re-import reports what changed; a value set by hand outranks the table from then on.
        let changedTable = try writeTable("lab.csv", defocusOfFirst: "-520")
        let reimported = try run(["import-metadata", changedTable.path, "--mapping", mapping.path])
        XCTAssertEqual(reimported.status, 0, reimported.standardError)
        XCTAssertTrue(reimported.standardOutput.contains("1 changed"), reimported.standardOutput)
        XCTAssertTrue(reimported.standardOutput.contains("run1/Au-2024-03-01-n01.dm3 (line 2): defocus -50 -> -52"),
                      reimported.standardOutput)
        let set = try run(["set", "--where", #"file = "Au-2024-03-01-n01.dm3""#, "defocus=-49", "operator=grace"])
        XCTAssertEqual(set.status, 0, set.standardError)
        XCTAssertEqual(set.standardOutput, "1 frame selected, 2 values changed\n")
        _ = try run(["import-metadata", changedTable.path, "--mapping", mapping.path])
        XCTAssertEqual(try count("defocus = -49"), "1")
        let history = try run(["history", "Au-2024-03-01-n01.dm3"])
        for expected in ["defocus: (none) -> -50  (table: lab.csv line 2)", "defocus: -50 -> -52  (table: lab.csv line 2)",
                         "defocus: -52 -> -49  (set: hrtem set --where", "operator: ada -> grace  (set:"] {
            XCTAssertTrue(history.standardOutput.contains(expected), "missing '\(expected)' in\n\(history.standardOutput)")
        }
        let unknown = try run(["set", "--where", "defocus < 0", "defocu=1"])
        XCTAssertEqual(unknown.status, 64)
        XCTAssertTrue(unknown.standardError.contains("unknown field 'defocu'") && unknown.standardError.contains("defocus"),
                      unknown.standardError)
        let wrongType = try run(["set", "--where", "defocus < 0", "defocus=near"])
        XCTAssertEqual(wrongType.status, 64)
        XCTAssertTrue(wrongType.standardError.contains("'near' is not a number"), wrongType.standardError)
        XCTAssertEqual(try count("defocus = -49"), "1")
        let badQuery = try run(["query", "defocos < 0"])
        XCTAssertTrue(badQuery.standardError.contains("unknown field 'defocos'") && badQuery.standardError.contains("defocus"),
                      badQuery.standardError)

        // The study's question for the lab's field: one dataset per defocus group, and the matrix.
        let out = root.appendingPathComponent("report")
        let matrix = try run(["matrix", "--where", #"material = "Au""#, "--split-by", "defocus~5", "--patch", "32",
                              "--min-particle-pixels", "1", "--folds", "2", "--epochs", "1", "--executor", "simulated",
                              "--out", out.path])
        XCTAssertEqual(matrix.status, 0, matrix.standardError + matrix.standardOutput)
        XCTAssertTrue(matrix.standardOutput.contains("split by defocus: 2 groups"), matrix.standardOutput)
        XCTAssertTrue(matrix.standardOutput.contains("defocus -51 .. -49 nm: 4 frames"), matrix.standardOutput)
        XCTAssertTrue(matrix.standardOutput.contains("defocus -101 .. -100 nm: 4 frames"), matrix.standardOutput)
        let report = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(report.contains("defocus"), "the report names the field")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("matrix.json"))) as? [String: Any]
        XCTAssertEqual((json?["cells"] as? [[String: Any]])?.count, 4)
    }

    func testBadTablesNameFileLineAndColumnAndChangeNothing() throws {
        let lab = try makeLabFrames()
        XCTAssertEqual(try run(["field", "add", "defocus", "--type", "number", "--unit", "nm"]).status, 0)
        XCTAssertEqual(try run(["ingest", lab.path, "--name-pattern", Self.pattern]).status, 0)
        let mapping = try writeMapping()
        XCTAssertEqual(try run(["import-metadata", try writeTable("lab.csv").path, "--mapping", mapping.path]).status, 0)
        func snapshot() throws -> String {
            try run(["query", "defocus is not missing or dose is not missing", "--format", "csv"]).standardOutput
                + run(["summary", "--by", "defocus,dose"]).standardOutput + run(["field", "list"]).standardOutput
        }
        let before = try snapshot()

        let cases: [(table: URL, arguments: [String], position: String, message: String)] = [
            (try writeTable("wrong-type.csv", defocusOfFirst: "far"), ["--mapping", mapping.path],
             "wrong-type.csv:2:4", "'far' is not a number"),
            (try writeTable("unknown-field.csv"), ["--map", "Run=folder", "--map", "Image=file", "--map", "Defocus [A]=defocuss:A"],
             "unknown-field.csv:1:4", "unknown field 'defocuss'"),
            (try writeTable("duplicate.csv", extraRows: "run1;Au-2024-03-01-n03.dm3;400;-400;again\n"), ["--mapping", mapping.path],
             "duplicate.csv:10:1", "duplicate key run1 / Au-2024-03-01-n03.dm3: already on line 4"),
            (try writeTable("missing-column.csv"), ["--mapping", mapping.path, "--map", "Focus (um)=defocus:um"],
             "missing-column.csv:1:6", "names column 'Focus (um)', which the header does not have"),
        ]
        for (table, arguments, position, message) in cases {
            let result = try run(["import-metadata", table.path, "--keep-unmapped"] + arguments)
            XCTAssertNotEqual(result.status, 0, table.lastPathComponent)
            XCTAssertTrue(result.standardError.contains(position) && result.standardError.contains(message),
                          "\(table.lastPathComponent): expected '\(position)' and '\(message)' in\n\(result.standardError)")
            XCTAssertEqual(try snapshot(), before, "\(table.lastPathComponent) changed the catalog")
        }
    }

    func testReferenceFramesAreCatalogedWithoutATable() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let dm = reference.appendingPathComponent("dm")
        let result = try run(["ingest", dm.path])
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertTrue(result.standardOutput.contains("5 frame file(s): 5 new"), result.standardOutput)
        // Only what is not a frame is left out (the folder's expected.json).
        XCTAssertTrue(result.standardOutput.contains("could not place 1 file(s)")
                      && result.standardOutput.contains("expected.json: not a frame"), result.standardOutput)
        XCTAssertEqual(try count("file is not missing"), "5")
        // Pixel sizes from the calibrations where the x axis is a length (nm, pm), not eV.
        XCTAssertEqual(try count("pixel_scale is not missing"), "4")
        XCTAssertEqual(try count("pixel_scale = 0.002"), "2")
        // Fields from DM tags: the spectrum's camera (Acquisition.Device.Name) and voltage.
        XCTAssertEqual(try count(#"camera = "EF-CCD" and voltage = 300 and file = "08_carbon.dm3""#), "1")
        let gaps = try run(["summary", "--missing"])
        let rows = gaps.standardOutput.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertTrue(rows.contains(["dose", "number", "e/A^2", "0", "5"]), gaps.standardOutput)
        XCTAssertTrue(rows.contains(["pixel_scale", "number", "nm/px", "4", "1"]), gaps.standardOutput)

        let formats = try run(["ingest", reference.appendingPathComponent("formats").path])
        XCTAssertEqual(formats.status, 0, formats.standardError)
        XCTAssertFalse(formats.standardOutput.contains("no metadata"), formats.standardOutput)
        // What is refused is refused for what the file holds (the complex FFT), never for metadata.
        XCTAssertTrue(formats.standardOutput.contains("complex"), formats.standardOutput)
        // Fields from what the SER/EMI and Velox readers know: the camera and the voltage.
        XCTAssertEqual(try count(#"camera = "BM-Ceta""#), "3")
        XCTAssertEqual(try count(#"voltage = 200 and camera = "BM-Ceta""#), "2")   // the two TIA series
        XCTAssertEqual(try count(#"voltage = 300 and camera = "BM-Ceta""#), "1")  // the Velox stack
    }
}
