import Foundation
import Micrograph
import TestSupport
import XCTest

/// Every real MRC, TIA SER and EMD file in ../shared/reference/formats read as the independent
/// reader (RosettaSciIO) read it: shape, dtype, axis scales and units, min/max/mean and the
/// SHA-256 of the pixels; complex signals end in a clear error naming the file.
final class FormatConformanceTests: XCTestCase {
    /// Length units to nanometres (RosettaSciIO converts Velox metres to a readable unit).
    static let nanometresPer: [String: Double] = ["pm": 1e-3, "nm": 1, "µm": 1e3, "um": 1e3, "mm": 1e6, "m": 1e9]

    func testReferenceFilesMatchExpectedJSON() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let folder = reference.appendingPathComponent("formats")
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("expected.json"))) as! [String: Any]
        XCTAssertEqual(expected.count, 7)
        var realSignals = 0, complexSignals = 0
        for name in expected.keys.sorted() {
            let url = folder.appendingPathComponent(name)
            for (index, signal) in (expected[name] as! [[String: Any]]).enumerated() {
                let label = "\(name) signal \(index)"
                let selection = ImageSelection(signal: name.hasSuffix(".emd") ? .index(index) : nil)
                let dtype = signal["dtype"] as! String
                if dtype.hasPrefix("complex") {
                    complexSignals += 1
                    XCTAssertThrowsError(try readMicrograph(at: url, selecting: selection), label) { error in
                        let text = "\(error)"
                        XCTAssertTrue(text.contains(url.path) && text.contains("complex"), text)
                    }
                    continue
                }
                realSignals += 1
                let image = try readMicrograph(at: url, selecting: selection)
                let header = image.header
                XCTAssertEqual(header.shape, signal["shape"] as! [Int], label)
                XCTAssertEqual(header.pixelType.rawValue, dtype, label)
                XCTAssertEqual(sha256Hex(image.data.bytes), signal["sha256_le_c_order"] as! String, label)
                // Velox titles are the detector's name in the metadata ("BM-Ceta"), not a display
                // label as RosettaSciIO takes them ("Ceta"); Berkeley titles are group names.
                if let title = signal["title"] as? String, header.format == .emdBerkeley { XCTAssertEqual(header.microscope.title, title, label) }
                let axes = signal["axes"] as! [[String: Any]]
                XCTAssertEqual(header.calibrations.count, axes.count, label)
                for (axis, (ours, theirs)) in zip(header.calibrations, axes).enumerated() {
                    let scale = theirs["scale"] as! Double
                    let unit = theirs["units"] as? String ?? ""
                    let what = "\(label) axis \(axis): ours \(ours.scale) \(ours.unit), theirs \(scale) \(unit)"
                    if unit == ours.unit {
                        XCTAssertEqual(ours.scale, scale, accuracy: abs(scale) * 1e-9, what)
                    } else if let theirFactor = FormatConformanceTests.nanometresPer[unit], let ourFactor = FormatConformanceTests.nanometresPer[ours.unit] {
                        XCTAssertEqual(ours.scale * ourFactor, scale * theirFactor, accuracy: abs(scale * theirFactor) * 1e-9, what)
                    } else if unit == "nm", ours.unit == "1/nm" {
                        // RosettaSciIO reads a SER file alone as lengths in metres; the EMI beside
                        // it says diffraction, so the file's number (reciprocal metres) is the same.
                        XCTAssertEqual(ours.scale * 1e9, scale * 1e-9, accuracy: abs(scale * 1e-9) * 1e-9, what)
                    } else {
                        XCTFail("unit mismatch: \(what)")
                    }
                }
                let values = doubles(image.data)
                XCTAssertEqual(values.min()!, signal["min"] as! Double, label)
                XCTAssertEqual(values.max()!, signal["max"] as! Double, label)
                let mean = values.reduce(0, +) / Double(values.count)
                XCTAssertEqual(mean, signal["mean"] as! Double, accuracy: abs(signal["mean"] as! Double) * 1e-9, label)
                // The Float frame is plane 0 of the stored pixels.
                let frame = try readFrame(at: url, selecting: selection)
                let planeCount = header.planeCount
                XCTAssertEqual(frame.raster.pixels.map(Double.init), Array(values.prefix(values.count / planeCount)), label)
            }
        }
        XCTAssertEqual(realSignals, 6)
        XCTAssertEqual(complexSignals, 1)
    }

    func testTIAMetadataFromTheEMI() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let header = try readMicrographHeader(at: reference.appendingPathComponent("formats/128x128-TEM_search_1.ser"))
        XCTAssertEqual(header.format, .ser)
        XCTAssertEqual(header.microscope.voltage, 200_000)
        XCTAssertEqual(header.microscope.indicatedMagnification, 22_500)
        XCTAssertEqual(header.microscope.exposureSeconds, 0.1)
        XCTAssertEqual(header.microscope.detector, "BM-Ceta")
        XCTAssertEqual(header.microscope.acquisitionDate, "2016-02-22")
        XCTAssertEqual(header.tags.value(at: "EMI.ExperimentalDescription.High tension")?.stringValue, "200 kV")
        let diffraction = try readMicrographHeader(at: reference.appendingPathComponent("formats/128x128x5-diffraction_preview_1.ser"))
        XCTAssertEqual(diffraction.calibrations.last?.unit, "1/nm")
        XCTAssertNil(diffraction.microscope.pixelSizeNM, "a reciprocal axis is not a pixel size")
    }

    func testVeloxMetadataAndStackSelection() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let url = reference.appendingPathComponent("formats/fei_example_tem_stack.emd")
        XCTAssertEqual(try MicrographFormat.detect(fileAt: url), .emdVelox)
        let header = try readMicrographHeader(at: url)
        XCTAssertEqual(header.microscope.voltage, 300_000)
        XCTAssertEqual(header.microscope.indicatedMagnification ?? 0, 1_271_519.155, accuracy: 1e-3)
        XCTAssertEqual(header.microscope.exposureSeconds, 0.8)
        XCTAssertEqual(header.microscope.detector, "BM-Ceta")
        XCTAssertEqual(header.microscope.acquisitionDate, "2019-12-05")
        XCTAssertEqual(header.microscope.pixelSizeNM ?? 0, 0.0081728831922978511, accuracy: 1e-15)
        XCTAssertEqual(header.tags.value(at: "Metadata.Instrument.InstrumentModel")?.stringValue, "Titan")
        let all = doubles(try readMicrograph(at: url).data)
        let plane = 9
        for k in 0..<2 {
            let frame = try readFrame(at: url, selecting: ImageSelection(plane: .index(k)))
            XCTAssertEqual(frame.raster.pixels.map(Double.init), Array(all[(k * plane)..<((k + 1) * plane)]))
        }
        let sum = try readFrame(at: url, selecting: ImageSelection(plane: .sum))
        XCTAssertEqual(sum.raster.pixels.map(Double.init), (0..<plane).map { all[$0] + all[plane + $0] })
        XCTAssertEqual(try readFrame(at: url, selecting: ImageSelection(signal: .title("BM-Ceta"))).raster.pixels.count, 9)
        XCTAssertThrowsError(try readFrame(at: url, selecting: ImageSelection(plane: .index(2)))) { error in
            XCTAssertTrue("\(error)".contains("plane 2 does not exist"), "\(error)")
        }
        XCTAssertThrowsError(try readFrame(at: url, selecting: ImageSelection(signal: .title("HAADF")))) { error in
            XCTAssertTrue("\(error)".contains("no image signal titled 'HAADF'") && "\(error)".contains("BM-Ceta"), "\(error)")
        }
        let berkeley = reference.appendingPathComponent("formats/example_image.emd")
        XCTAssertEqual(try MicrographFormat.detect(fileAt: berkeley), .emdBerkeley)
    }

    func doubles(_ array: NPYArray) -> [Double] {
        array.bytes.withUnsafeBytes { raw in
            (0..<array.elementCount).map { i -> Double in
                switch array.pixelType {
                case .int8: return Double(raw.load(fromByteOffset: i, as: Int8.self))
                case .uint8: return Double(raw.load(fromByteOffset: i, as: UInt8.self))
                case .int16: return Double(raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))
                case .uint16: return Double(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                case .int32: return Double(raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
                case .uint32: return Double(raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                case .float32: return Double(raw.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
                case .float64: return raw.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)
                case .int64: return Double(raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                case .uint64: return Double(raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                case .bool: return Double(raw.load(fromByteOffset: i, as: UInt8.self))
                }
            }
        }
    }
}
