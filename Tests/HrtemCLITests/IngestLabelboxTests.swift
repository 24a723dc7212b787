import Foundation
import Micrograph
import TestSupport
import XCTest

/// `hrtem labelbox import` through the built binary: object and composite masks from local
/// files, ambiguous names listed, unsafe paths refused, IDs kept and URLs not.
final class IngestLabelboxTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws { root = try makeTemporaryFolder("hrtem-labelbox") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    func allFiles(under url: URL) -> Set<String> {
        var out = Set<String>()
        let walker = FileManager.default.enumerator(at: url, includingPropertiesForKeys: nil)
        while let next = walker?.nextObject() as? URL { out.insert(next.standardizedFileURL.path) }
        return out
    }

    func testImportsMasksKeepsIDsAndRefusesUnsafePaths() throws {
        let data = root.appendingPathComponent("work/hrtem-data")
        let mirror = root.appendingPathComponent("work/mirror")
        let width = 16, height = 8
        let blank = Raster(width: width, height: height, pixels: [Float](repeating: 1, count: width * height))
        for (session, file) in [("s1", "frameA.dm3"), ("s1", "frameB.dm4"), ("s1", "dup.dm3"), ("s2", "dup.dm3"), ("s2", "frameC.dm3")] {
            try writeDM(blank, to: mirror.appendingPathComponent("\(session)/\(file)"), pixelSizeNM: 0.02)
        }
        let ingest = try runHrtem(["ingest", mirror.path, "--data", data.path])
        XCTAssertEqual(ingest.status, 0, ingest.standardError)

        let masks = root.appendingPathComponent("work/masks")
        func mask(_ on: (Int) -> Bool) -> Raster<UInt8> {
            Raster(width: width, height: height, pixels: (0..<(width * height)).map { on($0) ? 255 : 0 })
        }
        try writePNG(gray8: mask { $0 < 10 }, to: masks.appendingPathComponent("featA1.png"))
        try writePNG(gray8: mask { $0 >= 5 && $0 < 20 }, to: masks.appendingPathComponent("featA2.png"))
        let red: [UInt8] = [255, 0, 0], green: [UInt8] = [0, 255, 0], black: [UInt8] = [0, 0, 0]
        try writePNG(rgb: (0..<(width * height)).flatMap { $0 % 4 == 0 ? red : $0 % 4 == 1 ? green : black },
                     width: width, height: height, to: masks.appendingPathComponent("compositeB"))
        // A file just outside the masks folder that a hostile export points at.
        try writePNG(gray8: mask { _ in true }, to: root.appendingPathComponent("work/outside.png"))

        func row(_ external: String, objects: String, id: String) -> String {
            // One line per data row: the objects above are written over several lines for reading.
            let objects = objects.replacingOccurrences(of: "\n", with: " ")
            return """
            {"data_row": {"id": "\(id)", "external_id": "\(external)", "row_data": "https://storage.example/\(id)?token=secret"}, "media_attributes": {"width": \(width), "height": \(height)}, "projects": {"projX": {"name": "HRTEM", "labels": [{"id": "label-\(id)", "annotations": {"objects": [\(objects)], "classifications": []}}]}}}
            """
        }
        let export = [
            row("frameA.png", objects: """
                {"feature_id": "featA1", "name": "particle", "annotation_kind": "ImageSegmentationMask", "mask": {"url": "https://api.labelbox.com/api/v1/tasks/t/masks/featA1/index/1"}},
                {"feature_id": "featA2", "name": "particle", "annotation_kind": "ImageSegmentationMask", "mask": {"url": "https://api.labelbox.com/api/v1/tasks/t/masks/featA2/index/1"}},
                {"feature_id": "box1", "name": "box", "annotation_kind": "ImageBoundingBox", "bounding_box": {"top": 1, "left": 1, "height": 2, "width": 2}}
                """, id: "rowA"),
            row("frameB", objects: """
                {"feature_id": "featB", "name": "particle", "composite_mask": {"url": "https://api.labelbox.com/masks/compositeB", "color_rgb": [255, 0, 0]}}
                """, id: "rowB"),
            row("dup.dm3", objects: "", id: "rowDup"),
            row("../../evil.dm3", objects: "", id: "rowEvil"),
            row("frameC.dm3", objects: """
                {"feature_id": "featC", "name": "particle", "mask": {"url": "../outside.png"}}
                """, id: "rowC"),
        ].joined(separator: "\n") + "\n"
        let exportURL = root.appendingPathComponent("work/export.ndjson")
        try writeFileAtomically(Data(export.utf8), to: exportURL)

        let before = allFiles(under: root).filter { !$0.hasPrefix(data.path) }
        let result = try runHrtem(["labelbox", "import", exportURL.path, "--masks", masks.path, "--data", data.path])
        XCTAssertEqual(result.status, 0, result.standardError)
        let out = result.standardOutput
        XCTAssertTrue(out.contains("5 data row(s): 2 label(s) new, 0 changed, 0 unchanged"), out)
        XCTAssertTrue(out.contains("line 3 (dup.dm3)") && out.contains("2 sessions"), out)
        XCTAssertTrue(out.contains("line 4 (../../evil.dm3)") && out.contains("no catalog frame"), out)
        XCTAssertTrue(out.contains("line 5 (frameC.dm3)") && out.contains("refused"), out)
        XCTAssertEqual(allFiles(under: root).filter { !$0.hasPrefix(data.path) }, before, "nothing may be written outside the data folder")

        let shownA = try runHrtem(["show", "s1/frameA.dm3", "--data", data.path])
        XCTAssertTrue(shownA.standardOutput.contains("labelbox: \(data.path)/store/"), shownA.standardOutput)
        XCTAssertTrue(shownA.standardOutput.contains("20 particle pixels"), "union of the two objects: \(shownA.standardOutput)")
        XCTAssertTrue(shownA.standardOutput.contains("\"data_row_id\":\"rowA\"") && shownA.standardOutput.contains("featA2"), shownA.standardOutput)
        XCTAssertFalse(shownA.standardOutput.contains("https://"), "no URLs are kept: \(shownA.standardOutput)")
        let shownB = try runHrtem(["show", "frameB.dm4", "--data", data.path])
        XCTAssertTrue(shownB.standardOutput.contains("\(width * height / 4) particle pixels"), "red pixels only: \(shownB.standardOutput)")

        let again = try runHrtem(["labelbox", "import", exportURL.path, "--masks", masks.path, "--data", data.path])
        XCTAssertTrue(again.standardOutput.contains("0 label(s) new, 0 changed, 2 unchanged"), again.standardOutput)

        let broken = root.appendingPathComponent("work/broken.ndjson")
        try writeFileAtomically(Data((export + "{not json\n").utf8), to: broken)
        let failed = try runHrtem(["labelbox", "import", broken.path, "--masks", masks.path, "--data", data.path])
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertTrue(failed.standardError.contains("broken.ndjson:6"), failed.standardError)
    }
}
