import Foundation
import Micrograph
import TestSupport
import XCTest

/// `hrtem ingest` catalogs MRC, TIA SER (+EMI) and Velox/Berkeley EMD frames recognized by
/// content, and `hrtem show` prints what they say, through the built binary.
final class IngestFormatsTests: XCTestCase {
    var root: URL!
    var data: URL!

    override func setUpWithError() throws {
        root = try makeTemporaryFolder("hrtem-ingest-formats")
        data = root.appendingPathComponent("hrtem-data")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    func run(_ arguments: [String]) throws -> CommandResult {
        try runHrtem(arguments + ["--data", data.path])
    }

    func testIngestAndShowNewFormats() throws {
        let session = root.appendingPathComponent("mirror/2024_03_01 Pt on C")
        let frame = Raster(width: 16, height: 12, pixels: (0..<192).map { UInt16($0 * 37 % 1000) })
        try writeMRC([frame, frame], to: session.appendingPathComponent("movie.mrcs"), pixelSizeNM: 0.05)
        try writeSER([frame], to: session.appendingPathComponent("search_1.ser"), pixelSizeNM: 0.03,
                     emiMetadata: ["AcceleratingVoltage": "200000", "Magnification": "245000 X", "DwellTimePath": "0.4",
                                   "CameraNamePath": "BM-Ceta", "AcquireDate": "Fri Mar 01 09:30:00 2024"])
        try writeVeloxEMD([VeloxImageSignal(title: "Ceta", frames: [frame], pixelSizeNM: 0.02,
                                            metadata: ["Optics.AccelerationVoltage": "300000", "Optics.NominalMagnification": "330000",
                                                       "Detectors.Detector-0.ExposureTime": "0.1596",
                                                       "Acquisition.AcquisitionStartDatetime.DateTime": "1709285400"]),
                           VeloxImageSignal(title: "HAADF", frames: [frame], pixelSizeNM: 0.04)],
                          to: session.appendingPathComponent("velox.bin"))   // the name says nothing
        let nm = AxisCalibration(scale: 0.1, origin: 0, unit: "nm")
        try writeBerkeleyEMD([BerkeleyEMDSignal(title: "frame", planes: [frame], calibrations: [nm, nm])],
                             to: session.appendingPathComponent("berkeley.emd"))
        try writeMRC([frame], to: session.appendingPathComponent("Labels/unrelated.mrc"))
        try writeFileAtomically(Data("<ObjectInfo>".utf8), to: session.appendingPathComponent("stray.txt"))

        let ingested = try run(["ingest", root.appendingPathComponent("mirror").path, "--jobs", "2"])
        XCTAssertEqual(ingested.status, 0, ingested.standardError)
        let out = ingested.standardOutput
        XCTAssertTrue(out.contains("4 frame file(s): 4 new"), out)
        XCTAssertTrue(out.contains("4 from file tags"), out)
        XCTAssertFalse(out.contains("search.emi"), "the EMI is read with its SER, not listed: \(out)")

        let velox = try run(["show", "2024_03_01 Pt on C/velox.bin"])
        XCTAssertEqual(velox.status, 0, velox.standardError)
        for expected in ["format                emd-velox", "pixel scale           0.02 nm/px", "magnification         330 kx",
                         "exposure              0.1596 s", "microscope voltage v  300000", "microscope detector   Ceta",
                         "date                  2024-03-01", "uint16 HAADF",
                         "Metadata.Optics.AccelerationVoltage = \"300000\""] {
            XCTAssertTrue(velox.standardOutput.contains(expected), "missing '\(expected)' in\n\(velox.standardOutput)")
        }
        let ser = try run(["show", "search_1.ser"])
        XCTAssertEqual(ser.status, 0, ser.standardError)
        for expected in ["format                ser", "pixel scale           0.03 nm/px", "magnification         245 kx",
                         "microscope voltage v  200000", "EMI.AcquireInfo.CameraNamePath = \"BM-Ceta\"", "date                  2024-03-01"] {
            XCTAssertTrue(ser.standardOutput.contains(expected), "missing '\(expected)' in\n\(ser.standardOutput)")
        }
        let mrc = try run(["show", "movie.mrcs"])
        XCTAssertTrue(mrc.standardOutput.contains("shape                 [2, 12, 16] (slowest first)"), mrc.standardOutput)
        XCTAssertTrue(mrc.standardOutput.contains("MRC.MODE = 6"), mrc.standardOutput)
        let berkeley = try run(["show", "berkeley.emd"])
        XCTAssertTrue(berkeley.standardOutput.contains("format                emd-berkeley"), berkeley.standardOutput)
        XCTAssertTrue(berkeley.standardOutput.contains("pixel scale           0.1 nm/px"), berkeley.standardOutput)

        // A file outside the catalog: what it says about itself, any signal by title.
        let loose = root.appendingPathComponent("loose.emd")
        try writeVeloxEMD([VeloxImageSignal(title: "BM-Ceta", frames: [frame, frame], pixelSizeNM: 0.02),
                           VeloxImageSignal(title: "HAADF", frames: [frame], pixelSizeNM: 0.04)], to: loose)
        let haadf = try run(["show", loose.path, "--signal", "HAADF"])
        XCTAssertEqual(haadf.status, 0, haadf.standardError)
        XCTAssertTrue(haadf.standardOutput.contains("pixel scale           0.04 nm/px"), haadf.standardOutput)
        let missing = try run(["show", loose.path, "--signal", "EDS"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.standardError.contains(loose.path) && missing.standardError.contains("no image signal titled 'EDS'"), missing.standardError)
    }

    func testComplexAndSpectrumFilesAreRefusedClearly() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let session = root.appendingPathComponent("mirror/session")
        try FileManager.default.createDirectory(at: session, withIntermediateDirectories: true)
        let fft = session.appendingPathComponent("fft.emd")
        try FileManager.default.copyItem(at: reference.appendingPathComponent("formats/fei_example_complex_fft.emd"), to: fft)
        let result = try run(["ingest", root.appendingPathComponent("mirror").path])
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertTrue(result.standardOutput.contains("could not place 1 file(s)") && result.standardOutput.contains(fft.path)
                      && result.standardOutput.contains("complex data"), result.standardOutput)
    }

    func testLabelTemplateAndParticleClasses() throws {
        let session = root.appendingPathComponent("mirror/lab")
        let frame = Raster(width: 8, height: 6, pixels: (0..<48).map { Float($0) })
        try writeDM(frame, to: session.appendingPathComponent("a.dm4"), pixelSizeNM: 0.02)
        try writeMRC([frame], to: session.appendingPathComponent("b.mrc"), pixelSizeNM: 0.02)
        // Multi-class masks: 0 background, 1 support, 2 particle.
        let classes = Raster(width: 8, height: 6, pixels: (0..<48).map { UInt8($0 % 3) })
        try writeTIFF(classes, to: session.appendingPathComponent("masks/a.tif"))
        try writeTIFF(classes, to: session.appendingPathComponent("masks/b.tif"))
        try writeTIFF(classes, to: session.appendingPathComponent("masks/stray.tif"))
        let result = try run(["ingest", root.appendingPathComponent("mirror").path, "--labels", "{dir}/masks/{stem}.tif",
                              "--particle-classes", "2"])
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertTrue(result.standardOutput.contains("2 frame file(s): 2 new"), result.standardOutput)
        XCTAssertTrue(result.standardOutput.contains("labels: 2 new"), result.standardOutput)
        XCTAssertTrue(result.standardOutput.contains("stray.tif: in a label folder"), result.standardOutput)
        let particles = classes.pixels.filter { $0 == 2 }.count
        let shown = try run(["show", "lab/a.dm4"])
        XCTAssertTrue(shown.standardOutput.contains("masks/a.tif, \(particles) particle pixels, 8 x 6"), shown.standardOutput)

        // NPY masks, any non-zero value is particle (the default rule).
        let other = root.appendingPathComponent("other/lab2")
        try writeDM(frame, to: other.appendingPathComponent("c.dm4"), pixelSizeNM: 0.02)
        try writeNPY(NPYArray(shape: [6, 8], uint8: classes.pixels), to: other.appendingPathComponent("c_mask.npy"))
        let npy = try run(["ingest", root.appendingPathComponent("other").path, "--labels", "{dir}/{stem}_mask.npy"])
        XCTAssertEqual(npy.status, 0, npy.standardError)
        XCTAssertTrue(npy.standardOutput.contains("1 frame file(s): 1 new") && npy.standardOutput.contains("labels: 1 new"), npy.standardOutput)
        let nonZero = classes.pixels.filter { $0 != 0 }.count
        XCTAssertTrue(try run(["show", "lab2/c.dm4"]).standardOutput.contains("c_mask.npy, \(nonZero) particle pixels"))

        let bad = try run(["ingest", root.appendingPathComponent("other").path, "--labels", "{dir}/masks/x.tif"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.standardError.contains("{stem}"), bad.standardError)
    }
}
