import Foundation
import Micrograph
import TestSupport
import XCTest

/// `hrtem synth` through the built binary: the folder it writes is taken by
/// `hrtem import-metadata` like the study's own, files read back with the right calibration,
/// the same seed gives the same bytes, and the committed fixtures regenerate bit-exactly.
final class SynthCommandTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = try makeTemporaryFolder("hrtem-synth-cli")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private let smallStudy = ["--sessions", "2", "--frames-per-condition", "1", "--size", "96",
                              "--pixel-scale", "0.02,0.042", "--dose", "80,884", "--particle-size", "2.2",
                              "--material", "Au,CdSe", "--xray-rate", "500", "--quiet"]

    func testSynthWritesAMirrorLayoutThatImportMetadataTakes() throws {
        let out = folder.appendingPathComponent("study")
        let run = try runHrtem(["synth", out.path] + smallStudy + ["--preview"])
        XCTAssertEqual(run.status, 0, run.standardError)
        XCTAssertTrue(run.standardOutput.contains("wrote 16 frames and labels in 4 session folders"), run.standardOutput)

        let table = try String(contentsOf: out.appendingPathComponent("Dataset_metadata.csv"), encoding: .utf8)
        let lines = table.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first,
                       "File name,Date,Material,Nanoparticle Size (nm),Nanoparticle Shape,Support,Instrument,Dosage (e/A2),Pixel Scale (nm),Folder")
        XCTAssertEqual(lines.count, 17)
        XCTAssertTrue(lines.contains("20240108_Au_UTC_330kx_1000e_0p0798s_01.dm3,01/08/24,Au,2.2,Sphere,UT Carbon,Team05,80,0.02,2024_01_08 2p2nm Au nanoparticles on UTC synthetic"), table)
        XCTAssertTrue(lines.contains("20240115_CdSe_UTC_330kx_2770e_0p3192s_01.dm3,01/15/24,CdSe,2.2,Oblong,UT Carbon,Team05,884,0.02,2024_01_15 2p2nm CdSe nanoparticles on UTC synthetic"), table)

        // Every row's frame and label exist; frames carry the pixel scale, labels are 0/255 and
        // agree with the ground truth; x-ray hits are where synthesis.json says.
        let truth = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(contentsOf: out.appendingPathComponent("synthesis.json"))) as? [String: Any])
        let frames = try XCTUnwrap(truth["frames"] as? [[String: Any]])
        XCTAssertEqual(frames.count, 16)
        for row in lines.dropFirst() {
            let fields = row.split(separator: ",").map(String.init)
            let frameURL = out.appendingPathComponent(fields[9]).appendingPathComponent(fields[0])
            let micrograph = try readMicrograph(at: frameURL)
            XCTAssertEqual(micrograph.header.shape, [96, 96])
            XCTAssertEqual(micrograph.header.pixelType, .float32)
            XCTAssertEqual(try XCTUnwrap(micrograph.header.calibrations.last?.nanometresPerPixel), Double(fields[8])!, accuracy: 1e-9)
            let stem = String(fields[0].dropLast(4))
            let label = try readLabelMask(at: out.appendingPathComponent(fields[9]).appendingPathComponent("Labels/\(stem)_label.png"))
            XCTAssertEqual(label.width, 96)
            let entry = try XCTUnwrap(frames.first { $0["frame"] as? String == "\(fields[9])/\(fields[0])" })
            XCTAssertEqual(label.pixels.filter { $0 != 0 }.count, entry["particlePixels"] as? Int)
            let raster = micrograph.raster
            let median = raster.pixels.sorted()[raster.count / 2]
            for hit in try XCTUnwrap(entry["xrayHits"] as? [[String: Int]]) {
                XCTAssertGreaterThan(raster[hit["row"]!, hit["column"]!], median + 1500)
            }
        }
        let preview = try readMicrographHeader(at: out.appendingPathComponent("preview.png"))
        XCTAssertEqual(preview.shape.count, 3, "an RGB picture")
        XCTAssertGreaterThan(preview.shape[1], 4 * 96)

        // The catalog takes the table like the study's: the names parse, dose = rate x exposure
        // within 1% (no warnings), magnification comes from the name.
        let data = folder.appendingPathComponent("data").path
        let imported = try runHrtem(["import-metadata", out.appendingPathComponent("Dataset_metadata.csv").path, "--data", data])
        XCTAssertEqual(imported.status, 0, imported.standardError)
        XCTAssertEqual(imported.standardError, "", "import warned about the synthetic table")
        XCTAssertTrue(imported.standardOutput.contains("16 new"), imported.standardOutput)
        let query = try runHrtem(["query", #"material = "CdSe" and dose ~ 884 +- 1 and pixel_scale = 0.042"#,
                                  "--format", "json", "--data", data])
        XCTAssertEqual(query.status, 0, query.standardError)
        let selected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(query.standardOutput.utf8)) as? [[String: Any]])
        XCTAssertEqual(selected.count, 2)
        XCTAssertEqual(Set(selected.compactMap { $0["magnification_kx"] as? Double }), [160])
        XCTAssertEqual(Set(selected.compactMap { $0["shape"] as? String }), ["Oblong"])
        // What the catalog's parser read back from the synthetic file names.
        XCTAssertEqual(Set(selected.compactMap { $0["dose_rate"] as? Double }), [1380])
        XCTAssertEqual(Set(selected.compactMap { $0["exposure_s"] as? Double }), [0.6384])
        XCTAssertEqual(Set(selected.compactMap { $0["date"] as? String }), ["2024-01-08", "2024-01-15"])

        // ... and `hrtem ingest` joins every frame and label to its row.
        let ingested = try runHrtem(["ingest", out.path, "--data", data])
        XCTAssertEqual(ingested.status, 0, ingested.standardError)
        XCTAssertTrue(ingested.standardOutput.contains("16 joined to the metadata table"), ingested.standardOutput)
        XCTAssertTrue(ingested.standardOutput.contains("labels: 16 new"), ingested.standardOutput)
        let labeled = try runHrtem(["query", "labeled = true and pixel_scale = 0.02", "--count", "--data", data])
        XCTAssertEqual(labeled.standardOutput, "8\n", labeled.standardError)
    }

    func testTheSameSeedGivesTheSameBytesAndAnotherSeedDoesNot() throws {
        let first = folder.appendingPathComponent("a"), second = folder.appendingPathComponent("b"),
            other = folder.appendingPathComponent("c")
        for (out, seed) in [(first, "5"), (second, "5"), (other, "6")] {
            let run = try runHrtem(["synth", out.path, "--seed", seed] + smallStudy)
            XCTAssertEqual(run.status, 0, run.standardError)
        }
        let a = try digests(of: first), b = try digests(of: second), c = try digests(of: other)
        XCTAssertEqual(a.count, 16 * 2 + 2)
        XCTAssertEqual(a, b)
        XCTAssertEqual(Set(a.keys), Set(c.keys))
        XCTAssertNotEqual(a.filter { $0.key.hasSuffix(".dm3") }.map(\.value).sorted(),
                          c.filter { $0.key.hasSuffix(".dm3") }.map(\.value).sorted())
    }

    func testOtherFormatsReadBack() throws {
        for (format, fileExtension) in [("dm4", "dm4"), ("tiff", "tif")] {
            let out = folder.appendingPathComponent(format)
            let run = try runHrtem(["synth", out.path, "--format", format, "--size", "64", "--dose", "423",
                                    "--pixel-scale", "0.033", "--particle-size", "5", "--material", "Ag", "--quiet"])
            XCTAssertEqual(run.status, 0, run.standardError)
            let file = out.appendingPathComponent("2024_01_08 5nm Ag nanoparticles on UTC synthetic/20240108_Ag_UTC_205kx_2650e_0p1596s_01.\(fileExtension)")
            let micrograph = try readMicrograph(at: file)
            XCTAssertEqual(micrograph.header.shape, [64, 64])
            XCTAssertEqual(try XCTUnwrap(micrograph.header.calibrations.last?.nanometresPerPixel), 0.033, accuracy: 1e-6)
            if format == "dm4" {
                XCTAssertEqual(micrograph.header.microscope.indicatedMagnification, 205_000)
                XCTAssertEqual(micrograph.header.microscope.exposureSeconds, 0.1596)
            }
        }
    }

    func testBadArgumentsAreRefusedWithoutWritingAnything() throws {
        let out = folder.appendingPathComponent("bad")
        let cases: [([String], String)] = [
            (["--dose", "80,abc"], "--dose"),
            (["--material", "Pt"], "unknown material 'Pt'"),
            (["--pixel-scale", "0"], "--pixel-scale 0"),
            (["--format", "jpeg"], "--format"),
            (["--sessions", "0"], "--sessions"),
            (["--first-date", "2024-02-30"], "no such day"),
        ]
        for (arguments, fragment) in cases {
            let run = try runHrtem(["synth", out.path, "--size", "32"] + arguments)
            XCTAssertEqual(run.status, 64, "\(arguments): \(run.standardError)")
            XCTAssertTrue(run.standardError.contains(fragment), "\(arguments): \(run.standardError)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        }
        // A folder with something in it is left alone unless --overwrite.
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: out.appendingPathComponent("notes.txt"))
        let refused = try runHrtem(["synth", out.path, "--size", "32", "--dose", "423", "--particle-size", "5",
                                    "--material", "Au", "--pixel-scale", "0.042", "--quiet"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.standardError.contains("not empty"), refused.standardError)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), ["notes.txt"])
    }

    /// `make fixtures` (scripts/make-fixtures.sh) regenerates the committed Fixtures/synthetic
    /// byte for byte.
    func testFixturesRegenerateBitExactly() throws {
        let committed = packageRoot.appendingPathComponent("Fixtures/synthetic")
        guard FileManager.default.fileExists(atPath: committed.path) else {
            return XCTFail("Fixtures/synthetic is missing: run `make fixtures` and commit it")
        }
        let out = folder.appendingPathComponent("fixtures")
        let run = try runProcess(packageRoot.appendingPathComponent("scripts/make-fixtures.sh"), [out.path],
                                 environment: ["HRTEM": productsFolder.appendingPathComponent("hrtem").path])
        XCTAssertEqual(run.status, 0, run.standardError)
        let expected = try digests(of: committed), regenerated = try digests(of: out)
        XCTAssertEqual(expected.count, 16 * 2 + 2)
        for (path, digest) in expected {
            XCTAssertEqual(regenerated[path], digest, "\(path) differs from the committed fixture")
        }
        XCTAssertEqual(Set(regenerated.keys), Set(expected.keys))
    }

    /// SHA-256 of every file under `root`, keyed by relative path.
    private func digests(of root: URL) throws -> [String: String] {
        var result = [String: String]()
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]))
        for case let url as URL in enumerator where try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true {
            let relative = String(url.standardizedFileURL.path.dropFirst(root.standardizedFileURL.path.count + 1))
            result[relative] = try sha256Hex(fileAt: url)
        }
        return result
    }
}
