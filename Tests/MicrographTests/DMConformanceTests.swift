import Foundation
import Micrograph
import TestSupport
import XCTest

/// Every real DM file in ../shared/reference/dm read as the independent reader (ncempy) read it.
final class DMConformanceTests: XCTestCase {
    func testReferenceFilesMatchExpectedJSON() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let folder = reference.appendingPathComponent("dm")
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("expected.json"))) as! [String: Any]
        let names = expected.keys.filter { !$0.hasPrefix("_") }.sorted()
        XCTAssertEqual(names.count, 5)
        for name in names {
            let facts = expected[name] as! [String: Any]
            let url = folder.appendingPathComponent(name)
            let header = try readMicrographHeader(at: url)
            XCTAssertEqual(header.format, name.hasSuffix("dm3") ? .dm3 : .dm4, name)
            XCTAssertEqual(header.shape, facts["shape"] as! [Int], name)
            XCTAssertEqual(header.pixelType.rawValue, facts["dtype"] as! String, name)
            let sizes = facts["pixelSize"] as! [Double]
            let units = facts["pixelUnit"] as! [String]
            XCTAssertEqual(header.calibrations.count, sizes.count, name)
            for (axis, calibration) in header.calibrations.enumerated() {
                XCTAssertEqual(calibration.scale, sizes[axis], accuracy: abs(sizes[axis]) * 1e-6, "\(name) axis \(axis)")
                XCTAssertEqual(calibration.unit, units[axis], "\(name) axis \(axis)")
            }
            for (path, value) in facts["tags"] as! [String: Any] {
                let found = header.tags.value(at: path)
                if let number = value as? Double, !(value is String) {
                    let got = try XCTUnwrap(found?.doubleValue, "\(name) \(path)")
                    XCTAssertEqual(got, number, accuracy: abs(number) * 1e-12, "\(name) \(path)")
                } else {
                    XCTAssertEqual(found?.stringValue, value as? String, "\(name) \(path)")
                }
            }
            let micrograph = try readMicrograph(at: url)
            XCTAssertEqual(sha256Hex(micrograph.data.bytes), facts["sha256_le"] as! String, name)
            var values = [Double]()
            values.reserveCapacity(micrograph.data.elementCount)
            micrograph.data.bytes.withUnsafeBytes { raw in
                for i in 0..<micrograph.data.elementCount {
                    switch header.pixelType {
                    case .float32: values.append(Double(raw.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)))
                    case .int16: values.append(Double(raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
                    default: XCTFail("unexpected type")
                    }
                }
            }
            XCTAssertEqual(values.min()!, facts["min"] as! Double, name)
            XCTAssertEqual(values.max()!, facts["max"] as! Double, name)
            let mean = values.reduce(0, +) / Double(values.count)
            XCTAssertEqual(mean, facts["mean"] as! Double, accuracy: abs(facts["mean"] as! Double) * 1e-6, name)
            // The Float frame agrees with the raw data (plane 0 for stacks).
            let frame = try readFrame(at: url)
            XCTAssertEqual(frame.raster.width, header.width)
            XCTAssertEqual(frame.raster.pixels.prefix(100).map(Double.init), Array(values.prefix(100)), name)
        }
    }

    func testTagPathsAndThumbnailConvention() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let header = try readMicrographHeader(at: reference.appendingPathComponent("dm/dmTest_float32_nonSquare_diffPixelSize.dm4"))
        XCTAssertEqual(header.imageIndex, 2, "the first image is the thumbnail")
        XCTAssertEqual(header.otherImages.map(\.index), [1])
        XCTAssertEqual(header.tags.value(at: "ImageList.2.ImageData.DataType")?.doubleValue, 2)
        XCTAssertNil(header.tags.value(at: "ImageList.9.Name"))
        XCTAssertFalse(header.tags.flattened().isEmpty)
    }

    func testRealLabelMask() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let url = reference.appendingPathComponent("20221109_Au_UTC_330kx_2640e_0p1596s_03_label.png")
        let mask = try readLabelMask(at: url)
        XCTAssertEqual(mask.width, 4096)
        XCTAssertEqual(mask.height, 4096)
        XCTAssertEqual(mask.pixels.reduce(0) { $0 + Int($1) }, 370_050)
        let header = try readMicrographHeader(at: url)
        XCTAssertEqual(header.format, .png)
        XCTAssertEqual(header.shape, [4096, 4096])
    }
}
