import Foundation
import Micrograph
import TestSupport
import XCTest

/// Files hrtem writes read back bit-exactly, for every pixel type and layout.
final class RoundTripTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try makeTemporaryFolder() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    /// A raster whose values cover the type's extremes and odd bit patterns.
    func sample<P: StoredPixel>(_ type: P.Type, width: Int = 37, height: Int = 23, make: (Int) -> P) -> Raster<P> {
        Raster(width: width, height: height, pixels: (0..<(width * height)).map(make))
    }

    func rasters() -> [(String, (URL, DMVersion?) throws -> Void)] {
        func check<P: StoredPixel & Equatable>(_ raster: Raster<P>) -> (URL, DMVersion?) throws -> Void {
            return { url, version in
                if let version {
                    try writeDM(raster, to: url, version: version, pixelSizeNM: 0.02,
                                tags: ["Microscope Info.Indicated Magnification": 330000, "Microscope Info.Voltage": 300000.0,
                                       "DataBar.Exposure Time (s)": 0.1596, "DataBar.Acquisition Date": "11/9/2022"])
                } else {
                    try writeTIFF(raster, to: url, pixelSizeNM: 0.02)
                }
                let back = try readMicrograph(at: url)
                XCTAssertEqual(back.header.pixelType, P.pixelType, url.lastPathComponent)
                XCTAssertEqual(back.header.shape, [raster.height, raster.width], url.lastPathComponent)
                XCTAssertEqual(back.data.bytes, raster.littleEndianBytes, "\(url.lastPathComponent): pixels differ")
                XCTAssertEqual(back.header.nanometresPerPixel ?? 0, 0.02, accuracy: 1e-8, url.lastPathComponent)
                if version != nil {
                    XCTAssertEqual(back.header.microscope.indicatedMagnification, 330000)
                    XCTAssertEqual(back.header.microscope.voltage, 300000)
                    XCTAssertEqual(back.header.microscope.exposureSeconds, 0.1596)
                    XCTAssertEqual(back.header.microscope.acquisitionDate, "11/9/2022")
                    XCTAssertEqual(back.header.tags.value(at: "ImageList.2.ImageTags.Microscope Info.Indicated Magnification")?.doubleValue, 330000)
                }
            }
        }
        return [
            ("int8", check(sample(Int8.self) { Int8(truncatingIfNeeded: $0 * 7 - 128) })),
            ("uint8", check(sample(UInt8.self) { UInt8(truncatingIfNeeded: $0 * 13) })),
            ("int16", check(sample(Int16.self) { $0 == 0 ? .min : $0 == 1 ? .max : Int16(truncatingIfNeeded: $0 * 977 - 30000) })),
            ("uint16", check(sample(UInt16.self) { $0 == 0 ? .max : UInt16(truncatingIfNeeded: $0 * 2311) })),
            ("int32", check(sample(Int32.self) { $0 == 0 ? .min : $0 == 1 ? .max : Int32(truncatingIfNeeded: $0 * 1_000_003 - 400_000_000) })),
            ("uint32", check(sample(UInt32.self) { $0 == 0 ? .max : UInt32(truncatingIfNeeded: $0 &* 2_654_435_761) })),
            ("int64", check(sample(Int64.self) { $0 == 0 ? .min : Int64($0) &* 0x1234_5678_9ABC })),
            ("uint64", check(sample(UInt64.self) { $0 == 0 ? .max : UInt64($0) &* 0x9E37_79B9_7F4A_7C15 })),
            ("float32", check(sample(Float.self) { i in [Float.nan, .infinity, -.infinity, .leastNonzeroMagnitude, -0.0][i % 5 == 0 ? (i / 5) % 5 : 0] * (i % 5 == 0 ? 1 : 0) + (i % 5 == 0 ? 0 : Float(i) * 0.37 - 100) })),
            ("float64", check(sample(Double.self) { Double($0) * 1e-300 - 1e300 * Double($0 % 3) })),
        ]
    }

    func testDM3AndDM4RoundTripEveryPixelType() throws {
        for (name, check) in rasters() {
            try check(folder.appendingPathComponent("\(name).dm3"), .dm3)
            try check(folder.appendingPathComponent("\(name).dm4"), .dm4)
        }
    }

    func testTIFFRoundTripEveryPixelType() throws {
        for (name, check) in rasters() {
            try check(folder.appendingPathComponent("\(name).tif"), nil)
        }
    }

    func testTIFFLayoutsCompressionBigTIFFAndPages() throws {
        let raster = sample(UInt16.self, width: 100, height: 70) { UInt16(truncatingIfNeeded: $0 * 31 % 5000) }
        let second = sample(UInt16.self, width: 10, height: 5) { UInt16($0) }
        for compression in TIFFCompression.allCases {
            for tile in [nil, 32] as [Int?] {
                for big in [false, true] {
                    let url = folder.appendingPathComponent("t-\(compression)-\(tile ?? 0)-\(big).tif")
                    try writeTIFF(pages: [raster, second], to: url, compression: compression, tileSize: tile, bigTIFF: big, pixelSizeNM: 0.042)
                    let back = try readMicrograph(at: url)
                    XCTAssertEqual(back.data.bytes, raster.littleEndianBytes, url.lastPathComponent)
                    XCTAssertEqual(back.header.otherImages.map(\.shape), [[5, 10]], url.lastPathComponent)
                    XCTAssertEqual(back.header.calibrations[0].nanometresPerPixel ?? 0, 0.042, accuracy: 1e-7)
                    let frame = try readFrame(at: url)
                    XCTAssertEqual(frame.raster.pixels, raster.pixels.map(Float.init))
                }
            }
        }
    }

    func testThreeDimensionalAndOneDimensionalDM() throws {
        let shape = [3, 4, 5]
        let values = (0..<60).map { Int16($0 - 30) }
        for version in [DMVersion.dm3, .dm4] {
            let url = folder.appendingPathComponent("stack.\(version)")
            try values.withUnsafeBytes {
                try writeDM(shape: shape, pixelType: .int16, littleEndianBytes: $0,
                            calibrations: [AxisCalibration(scale: 4, unit: "um"), AxisCalibration(scale: 3, unit: "nm"), AxisCalibration(scale: 2, unit: "pm")],
                            to: url, version: version, name: "stack")
            }
            let back = try readMicrograph(at: url)
            XCTAssertEqual(back.header.shape, shape)
            XCTAssertEqual(back.header.calibrations.map(\.unit), ["um", "nm", "pm"])
            XCTAssertEqual(back.data.bytes, values.withUnsafeBytes { Array($0) })
            XCTAssertEqual(back.raster.pixels, values.prefix(20).map(Float.init), "plane 0")
            let spectrum = url.deletingPathExtension().appendingPathExtension("1d.\(version)")
            let counts: [Float] = [1, 2, 3, 4]
            try counts.withUnsafeBytes {
                try writeDM(shape: [4], pixelType: .float32, littleEndianBytes: $0, calibrations: [AxisCalibration(scale: 0.1, unit: "eV")],
                            to: spectrum, version: version, name: "spectrum")
            }
            let line = try readMicrograph(at: spectrum)
            XCTAssertEqual(line.header.shape, [4])
            XCTAssertEqual(line.raster.pixels, counts)
        }
    }

    func testPNGWritersAndMaskReaders() throws {
        let mask = Raster(width: 9, height: 4, pixels: (0..<36).map { $0 % 3 == 0 ? UInt8(255) : 0 })
        let gray = folder.appendingPathComponent("mask.png")
        try writePNG(gray8: mask, to: gray)
        XCTAssertEqual(try readLabelMask(at: gray).pixels, mask.pixels.map { $0 == 0 ? 0 : 1 })
        XCTAssertEqual(try readMicrograph(at: gray).data.bytes, mask.pixels)
        let wide = folder.appendingPathComponent("mask16.png")
        try writePNG(gray16: mask.map { $0 == 0 ? 0 : 1 }, to: wide)
        XCTAssertEqual(try readLabelMask(at: wide).pixels, mask.pixels.map { $0 == 0 ? 0 : 1 }, "16-bit value 1 is particle")
        let red = RGBColor(255, 0, 0), green = RGBColor(0, 255, 0)
        let colours = Raster(width: 9, height: 4, pixels: (0..<36).map { [RGBColor(0, 0, 0), red, green][$0 % 3] })
        let composite = folder.appendingPathComponent("composite.png")
        try writePNG(rgb: colours, to: composite)
        XCTAssertEqual(try readClassMask(at: composite, colorMap: [red: 1, green: 2]).pixels, (0..<36).map { UInt8($0 % 3) })
        XCTAssertEqual(try readLabelMask(at: composite).pixels, (0..<36).map { $0 % 3 == 0 ? 0 : 1 })
        let rgba = folder.appendingPathComponent("rgba.png")
        try writePNG(rgba: (0..<36).flatMap { i -> [UInt8] in [255, 255, 255, i % 2 == 0 ? 0 : 255] }, width: 9, height: 4, to: rgba)
        XCTAssertEqual(try readLabelMask(at: rgba).pixels, (0..<36).map { $0 % 2 == 0 ? 0 : 1 }, "transparent is background")
        let tiffMask = folder.appendingPathComponent("mask.tif")
        try writeTIFF(mask, to: tiffMask, compression: .deflate)
        XCTAssertEqual(try readLabelMask(at: tiffMask).pixels, mask.pixels.map { $0 == 0 ? 0 : 1 })
    }

    func testFormatIsDetectedByContentNotExtension() throws {
        let url = folder.appendingPathComponent("really-a-dm3.png")
        try writeDM(Raster(width: 2, height: 2, pixels: [Float](repeating: 1, count: 4)), to: url, version: .dm3)
        XCTAssertEqual(try MicrographFormat.detect(fileAt: url), .dm3)
        XCTAssertEqual(try readMicrographHeader(at: url).format, .dm3)
        let junk = folder.appendingPathComponent("junk.dm4")
        try writeFileAtomically(Data("hello world".utf8), to: junk)
        XCTAssertThrowsError(try readMicrographHeader(at: junk)) { error in
            XCTAssertTrue("\(error)".contains("junk.dm4") && "\(error)".contains("at byte 0"), "\(error)")
        }
    }

    /// ncempy (an independent reader) opens the DM files hrtem writes.
    func testNcempyReadsFilesHrtemWrote() throws {
        guard pythonCanImport("ncempy") else {
            throw XCTSkip("ncempy is not importable by \(peerPython) (run `make peers` or set HRTEM_PYTHON): interop check skipped")
        }
        let raster = Raster(width: 48, height: 32, pixels: (0..<(48 * 32)).map { Float($0) * 0.25 - 7 })
        let script = """
        import sys, hashlib, numpy as np
        from ncempy.io import dm
        for path in sys.argv[1:]:
            with dm.fileDM(path) as f:
                d = f.getDataset(0)
            a = np.ascontiguousarray(d['data']).astype('<' + d['data'].dtype.str[1:])
            print(path.rsplit('/', 1)[-1], a.shape[0], a.shape[1], a.dtype.name, hashlib.sha256(a.tobytes()).hexdigest(),
                  repr(float(d['pixelSize'][-1])), d['pixelUnit'][-1])
        """
        let scriptURL = folder.appendingPathComponent("read.py")
        try writeFileAtomically(Data(script.utf8), to: scriptURL)
        var paths = [String]()
        for version in [DMVersion.dm3, .dm4] {
            let url = folder.appendingPathComponent("interop.\(version == .dm3 ? "dm3" : "dm4")")
            try writeDM(raster, to: url, version: version, pixelSizeNM: 0.026)
            paths.append(url.path)
        }
        let int16 = folder.appendingPathComponent("interop16.dm4")
        try writeDM(Raster(width: 5, height: 3, pixels: (0..<15).map { Int16($0 * 1000 - 7000) }), to: int16, pixelSizeNM: 0.02)
        paths.append(int16.path)
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [peerPython, scriptURL.path] + paths)
        XCTAssertEqual(result.status, 0, result.standardError)
        let lines = result.standardOutput.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertEqual(lines.count, 3, result.standardOutput)
        for line in lines.prefix(2) {
            XCTAssertEqual(line[1...3], ["32", "48", "float32"])
            XCTAssertEqual(line[4], sha256Hex(raster.littleEndianBytes), line[0])
            XCTAssertEqual(Double(line[5])!, 0.026, accuracy: 1e-8)
            XCTAssertEqual(line[6], "nm")
        }
        XCTAssertEqual(lines[2][1...3], ["3", "5", "int16"])
        XCTAssertEqual(lines[2][4], sha256Hex((0..<15).map { Int16($0 * 1000 - 7000) }.withUnsafeBytes { Array($0) }))
    }
}

/// Inputs hrtem's writers cannot make: palette and low-bit PNGs from Pillow, and a DM file
/// whose DataType says complex.
final class ForeignInputTests: XCTestCase {
    func testComplexDMIsRefusedWithAClearMessage() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("complex.dm4")
        try writeDM(Raster(width: 4, height: 2, pixels: [Double](repeating: 1, count: 8)), to: url, version: .dm4)
        var bytes = [UInt8](try Data(contentsOf: url))
        // The frame's DataType (the second one; the first is the thumbnail's): name, 8-byte
        // size, "%%%%", 8-byte descriptor length, 8-byte type, then the int32 value (12).
        let name = Array("DataType".utf8)
        let hits = (0...(bytes.count - name.count)).filter { Array(bytes[$0..<($0 + name.count)]) == name }
        XCTAssertEqual(hits.count, 2)
        let value = hits[1] + name.count + 8 + 4 + 8 + 8
        XCTAssertEqual(bytes[value], 12)
        bytes[value] = 13
        XCTAssertThrowsError(try readMicrographHeader(bytes: Data(bytes), name: "complex.dm4")) { error in
            XCTAssertTrue("\(error)".contains("complex") && "\(error)".contains("complex.dm4 at byte"), "\(error)")
        }
    }

    func testPaletteAndLowBitPNGMasks() throws {
        guard pythonCanImport("PIL") else {
            throw XCTSkip("Pillow is not importable by \(peerPython): palette/1-bit PNG checks skipped")
        }
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = """
        import sys
        from PIL import Image
        out = sys.argv[1]
        w, h = 13, 7
        on = [(x + 2 * y) % 5 == 0 for y in range(h) for x in range(w)]
        one = Image.new("1", (w, h)); one.putdata([255 if v else 0 for v in on]); one.save(out + "/one.png")
        pal = Image.new("P", (w, h)); pal.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
        pal.putdata([1 if v else 0 for v in on]); pal.save(out + "/palette.png")
        four = pal.convert("L").point(lambda v: 15 if v else 0); four.save(out + "/gray4.png", bits=4)
        """
        let scriptURL = folder.appendingPathComponent("make.py")
        try writeFileAtomically(Data(script.utf8), to: scriptURL)
        let made = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [peerPython, scriptURL.path, folder.path])
        XCTAssertEqual(made.status, 0, made.standardError)
        let expected: [UInt8] = (0..<7).flatMap { y in (0..<13).map { x in (x + 2 * y) % 5 == 0 ? UInt8(1) : 0 } }
        for name in ["one.png", "palette.png", "gray4.png"] {
            let mask = try readLabelMask(at: folder.appendingPathComponent(name))
            XCTAssertEqual(mask.width, 13, name)
            XCTAssertEqual(mask.pixels, expected, name)
        }
        let classes = try readClassMask(at: folder.appendingPathComponent("palette.png"), colorMap: [RGBColor(200, 30, 30): 3])
        XCTAssertEqual(classes.pixels, expected.map { $0 * 3 })
    }
}
