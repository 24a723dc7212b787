import Foundation
import Micrograph
import TestSupport
import XCTest

/// hrtem's MRC, SER and EMD writers make files its readers give back bit-exactly, and that an
/// independent reader (RosettaSciIO, run with the peer Python) reads the same way.
final class FormatRoundTripTests: XCTestCase {
    struct Written {
        var url: URL
        /// Per signal: shape, dtype, little-endian C-order bytes, x pixel size in nm (nil: uncalibrated).
        var signals: [(shape: [Int], dtype: String, bytes: [UInt8], pixelSizeNM: Double?)]
    }

    static func planes<P: StoredPixel>(_ count: Int, width: Int, height: Int, seed: UInt64, _ make: (UInt64) -> P) -> [Raster<P>] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { _ in Raster(width: width, height: height, pixels: (0..<(width * height)).map { _ in make(random.next()) }) }
    }

    static func bytes<P: StoredPixel>(_ planes: [Raster<P>]) -> [UInt8] { planes.flatMap(\.littleEndianBytes) }

    /// Every writer and layout, in `folder`.
    static func writeFixtures(in folder: URL) throws -> [Written] {
        var out = [Written]()
        let movie: [Raster<UInt16>] = planes(3, width: 24, height: 20, seed: 1) { UInt16(truncatingIfNeeded: $0) }
        let section: [Raster<Float>] = planes(1, width: 17, height: 11, seed: 2) { Float(Int64(bitPattern: $0) % 100_000) / 7 }
        let shorts: [Raster<Int16>] = planes(1, width: 9, height: 13, seed: 3) { Int16(truncatingIfNeeded: $0) }
        let bytes8: [Raster<UInt8>] = planes(2, width: 8, height: 6, seed: 4) { UInt8(truncatingIfNeeded: $0) }
        let halves: [Raster<Float>] = planes(1, width: 10, height: 4, seed: 5) { Float(Float16(Float(Int64(bitPattern: $0) % 2048) / 8)) }
        func mrc<P: StoredPixel>(_ name: String, _ planes: [Raster<P>], float16: Bool = false, dtype: String? = nil) throws {
            let url = folder.appendingPathComponent(name)
            try writeMRC(planes, to: url, pixelSizeNM: 0.125, float16: float16, labels: ["hrtem fixture"])
            let shape = planes.count == 1 ? [planes[0].height, planes[0].width] : [planes.count, planes[0].height, planes[0].width]
            out.append(Written(url: url, signals: [(shape, dtype ?? P.pixelType.rawValue, bytes(planes), 0.125)]))
        }
        try mrc("movie.mrcs", movie)
        try mrc("section.mrc", section)
        try mrc("shorts.mrc", shorts)
        try mrc("bytes.mrc", bytes8)
        try mrc("halves.mrc", halves, float16: true)

        let ser = folder.appendingPathComponent("search_1.ser")
        try writeSER(shorts, to: ser, pixelSizeNM: 0.5, emiMetadata: ["AcceleratingVoltage": "300000", "Magnification": "330000 X",
                                                                     "DwellTimePath": "0.25", "CameraNamePath": "OneView",
                                                                     "AcquireDate": "Wed Nov 09 10:11:12 2022", "Mode": "TEM HM Image"])
        out.append(Written(url: ser, signals: [([13, 9], "int16", bytes(shorts), 0.5)]))
        let series = folder.appendingPathComponent("series_1.ser")
        let floats: [Raster<Float>] = planes(3, width: 7, height: 5, seed: 6) { Float(bitPattern: UInt32(truncatingIfNeeded: $0 >> 41) | 0x3F80_0000) }
        try writeSER(floats, to: series, pixelSizeNM: 0.02)
        out.append(Written(url: series, signals: [([3, 5, 7], "float32", bytes(floats), 0.02)]))

        let velox = folder.appendingPathComponent("velox.emd")
        let stack: [Raster<UInt16>] = planes(3, width: 6, height: 4, seed: 7) { UInt16(truncatingIfNeeded: $0) }
        let other: [Raster<UInt16>] = planes(1, width: 5, height: 5, seed: 8) { UInt16(truncatingIfNeeded: $0) }
        try writeVeloxEMD([VeloxImageSignal(title: "BM-Ceta", frames: stack, pixelSizeNM: 0.04,
                                            metadata: ["Optics.AccelerationVoltage": "300000", "Optics.NominalMagnification": "330000",
                                                       "Detectors.Detector-0.ExposureTime": "0.5"]),
                           VeloxImageSignal(title: "HAADF", frames: other, pixelSizeNM: 0.08)], to: velox)
        out.append(Written(url: velox, signals: [([3, 4, 6], "uint16", bytes(stack), 0.04), ([5, 5], "uint16", bytes(other), 0.08)]))
        let single = folder.appendingPathComponent("single.emd")
        try writeVeloxEMD([VeloxImageSignal(title: "Ceta", frames: section, pixelSizeNM: 0.02)], to: single)
        out.append(Written(url: single, signals: [([11, 17], "float32", bytes(section), 0.02)]))

        let berkeley = folder.appendingPathComponent("berkeley.emd")
        let ints: [Raster<Int32>] = planes(1, width: 5, height: 3, seed: 9) { Int32(truncatingIfNeeded: $0) }
        let nm = AxisCalibration(scale: 0.25, origin: 0, unit: "nm")
        try writeBerkeleyEMD([BerkeleyEMDSignal(title: "frame", planes: ints, calibrations: [nm, nm])], to: berkeley)
        out.append(Written(url: berkeley, signals: [([3, 5], "int32", bytes(ints), 0.25)]))
        let berkeleyStack = folder.appendingPathComponent("berkeley-stack.emd")
        try writeBerkeleyEMD([BerkeleyEMDSignal(title: "stack", planes: floats, calibrations: [AxisCalibration(scale: 2, origin: 0, unit: "s"), nm, nm])],
                             to: berkeleyStack)
        out.append(Written(url: berkeleyStack, signals: [([3, 5, 7], "float32", bytes(floats), 0.25)]))
        return out
    }

    func testWritersRoundTripThroughOurReaders() throws {
        let folder = try makeTemporaryFolder("hrtem-formats")
        defer { try? FileManager.default.removeItem(at: folder) }
        let written = try FormatRoundTripTests.writeFixtures(in: folder)
        let expectedFormats: [String: MicrographFormat] = ["mrc": .mrc, "mrcs": .mrc, "ser": .ser]
        for file in written {
            for (index, signal) in file.signals.enumerated() {
                let label = "\(file.url.lastPathComponent) signal \(index)"
                let selection = ImageSelection(signal: file.url.pathExtension == "emd" ? .index(index) : nil)
                let image = try readMicrograph(at: file.url, selecting: selection)
                if let format = expectedFormats[file.url.pathExtension] { XCTAssertEqual(image.header.format, format, label) }
                XCTAssertEqual(image.header.shape, signal.shape, label)
                XCTAssertEqual(image.header.pixelType.rawValue, signal.dtype, label)
                XCTAssertEqual(image.data.bytes, signal.bytes, "\(label): pixels differ")
                XCTAssertEqual(image.header.microscope.pixelSizeNM ?? -1, signal.pixelSizeNM ?? -1, accuracy: 1e-6, label)
                // Every plane alone, and the Float frame of plane 0.
                let planeBytes = signal.bytes.count / image.header.planeCount
                for plane in 0..<image.header.planeCount {
                    let one = try readMicrograph(at: file.url, selecting: ImageSelection(signal: selection.signal, plane: .index(plane)))
                    XCTAssertEqual(one.data.bytes, Array(signal.bytes[(plane * planeBytes)..<((plane + 1) * planeBytes)]), "\(label) plane \(plane)")
                }
                // From memory too (the fuzz path): same pixels.
                let inMemory = try readMicrograph(bytes: Data(contentsOf: file.url), name: file.url.lastPathComponent, selecting: selection)
                XCTAssertEqual(inMemory.data.bytes, signal.bytes, "\(label) from memory")
            }
        }
        // Format detection by content: names say nothing.
        let disguised = folder.appendingPathComponent("disguised.tif")
        try FileManager.default.copyItem(at: folder.appendingPathComponent("velox.emd"), to: disguised)
        XCTAssertEqual(try MicrographFormat.detect(fileAt: disguised), .emdVelox)
        XCTAssertEqual(try MicrographFormat.detect(fileAt: folder.appendingPathComponent("berkeley.emd")), .emdBerkeley)
        XCTAssertEqual(try MicrographFormat.detect(fileAt: folder.appendingPathComponent("movie.mrcs")), .mrc)
        XCTAssertEqual(try MicrographFormat.detect(fileAt: folder.appendingPathComponent("series_1.ser")), .ser)
        // Metadata through the EMI and Velox JSON.
        let ser = try readMicrographHeader(at: folder.appendingPathComponent("search_1.ser"))
        XCTAssertEqual(ser.microscope.voltage, 300_000)
        XCTAssertEqual(ser.microscope.indicatedMagnification, 330_000)
        XCTAssertEqual(ser.microscope.exposureSeconds, 0.25)
        XCTAssertEqual(ser.microscope.detector, "OneView")
        XCTAssertEqual(ser.microscope.acquisitionDate, "2022-11-09")
        let velox = try readMicrographHeader(at: folder.appendingPathComponent("velox.emd"), selecting: ImageSelection(signal: .title("HAADF")))
        XCTAssertEqual(velox.imageIndex, 2)
        XCTAssertEqual(velox.microscope.title, "HAADF")
        XCTAssertEqual(velox.otherImages.map(\.note), ["BM-Ceta"])
        let stack = try readMicrographHeader(at: folder.appendingPathComponent("velox.emd"))
        XCTAssertEqual(stack.microscope.voltage, 300_000)
        XCTAssertEqual(stack.microscope.indicatedMagnification, 330_000)
        XCTAssertEqual(stack.microscope.exposureSeconds, 0.5)
        XCTAssertEqual(stack.calibrations[0], AxisCalibration(scale: 0.5, origin: 0, unit: "s"))
        // A stack's sum.
        let sum = try readFrame(at: folder.appendingPathComponent("velox.emd"), selecting: ImageSelection(plane: .sum))
        let written0 = written.first { $0.url.lastPathComponent == "velox.emd" }!.signals[0].bytes
        let values = written0.withUnsafeBytes { raw in (0..<(written0.count / 2)).map { Float(raw.load(fromByteOffset: 2 * $0, as: UInt16.self)) } }
        XCTAssertEqual(sum.raster.pixels, (0..<24).map { values[$0] + values[24 + $0] + values[48 + $0] })
    }

    func testIndependentReaderReadsOurFilesBitExactly() throws {
        guard pythonCanImport("rsciio") else {
            throw XCTSkip("RosettaSciIO is not installed for \(peerPython) (run `make peers`): peer check skipped")
        }
        let folder = try makeTemporaryFolder("hrtem-formats-peer")
        defer { try? FileManager.default.removeItem(at: folder) }
        let written = try FormatRoundTripTests.writeFixtures(in: folder)
        let script = packageRoot.appendingPathComponent("Benchmarks/peers/formats_rosettasciio.py")
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [peerPython, script.path, "describe"] + written.map(\.url.path))
        XCTAssertEqual(result.status, 0, result.standardError)
        var seen = [String: [[String: Any]]]()
        for line in result.standardOutput.split(separator: "\n") {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            seen[object["file"] as! String, default: []].append(object)
        }
        for file in written {
            let theirs = try XCTUnwrap(seen[file.url.path], "peer read nothing from \(file.url.lastPathComponent)")
            XCTAssertEqual(theirs.count, file.signals.count, file.url.lastPathComponent)
            for (signal, peer) in zip(file.signals, theirs) {
                let label = "\(file.url.lastPathComponent) signal \(peer["index"] ?? "?")"
                XCTAssertEqual(peer["shape"] as? [Int], signal.shape, label)
                if peer["dtype"] as? String == "float16" {
                    // RosettaSciIO keeps MRC mode 12 as float16; hrtem widens it exactly to float32.
                    XCTAssertEqual(signal.dtype, "float32", label)
                    let halves = signal.bytes.withUnsafeBytes { raw in
                        (0..<(signal.bytes.count / 4)).flatMap { i -> [UInt8] in
                            let bits = Float16(raw.load(fromByteOffset: 4 * i, as: Float.self)).bitPattern
                            return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
                        }
                    }
                    XCTAssertEqual(peer["sha256"] as? String, sha256Hex(halves), label)
                } else {
                    XCTAssertEqual(peer["dtype"] as? String, signal.dtype, label)
                    XCTAssertEqual(peer["sha256"] as? String, sha256Hex(signal.bytes), label)
                }
                let axes = peer["axes"] as! [[String: Any]]
                let x = axes.last!
                let unit = x["units"] as? String ?? ""
                let factor = FormatConformanceTests.nanometresPer[unit] ?? .nan
                XCTAssertEqual((x["scale"] as! Double) * factor, signal.pixelSizeNM!, accuracy: signal.pixelSizeNM! * 1e-6, "\(label): x axis \(x)")
            }
        }
    }
}
