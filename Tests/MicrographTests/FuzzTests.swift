import Foundation
import Micrograph
import TestSupport
import XCTest

/// Mutated DM3, DM4, TIFF, PNG, MRC, SER and EMD files never crash, hang or allocate without bound: each case
/// either reads (the mutation hit only pixel values) or throws a `FormatError` that names the
/// file and a byte offset. `HRTEM_FUZZ_CASES` sets the number of cases (`make fuzz` runs a
/// long soak); `HRTEM_FUZZ_SEED` the seed; `HRTEM_FUZZ_TRACE` keeps each case (see below).
final class FuzzTests: XCTestCase {
    static var caseCount: Int { Int(ProcessInfo.processInfo.environment["HRTEM_FUZZ_CASES"] ?? "") ?? 10000 }
    static var seed: UInt64 { UInt64(ProcessInfo.processInfo.environment["HRTEM_FUZZ_SEED"] ?? "") ?? 20261125 }

    /// Valid files of every format and layout, made by hrtem's own writers.
    func seedFiles() throws -> [(name: String, bytes: Data)] {
        let folder = try makeTemporaryFolder("hrtem-fuzz")
        defer { try? FileManager.default.removeItem(at: folder) }
        var files = [(String, Data)]()
        func add(_ name: String, _ write: (URL) throws -> Void) throws {
            let url = folder.appendingPathComponent(name)
            try write(url)
            files.append((name, try Data(contentsOf: url)))
        }
        let floats = Raster(width: 24, height: 16, pixels: (0..<384).map { Float($0) * 1.5 - 50 })
        let shorts = Raster(width: 20, height: 12, pixels: (0..<240).map { UInt16($0 * 17) })
        let tags: [String: DMTagInput] = ["Microscope Info.Indicated Magnification": 330000, "DataBar.Acquisition Date": "11/9/2022"]
        try add("frame.dm3") { try writeDM(floats, to: $0, version: .dm3, pixelSizeNM: 0.02, tags: tags) }
        try add("frame.dm4") { try writeDM(floats, to: $0, version: .dm4, pixelSizeNM: 0.02, tags: tags) }
        try add("ints.dm4") { try writeDM(shorts, to: $0, version: .dm4) }
        try add("strips.tif") { try writeTIFF(pages: [shorts, shorts], to: $0, pixelSizeNM: 0.02) }
        try add("lzw.tif") { try writeTIFF(floats, to: $0, compression: .lzw) }
        try add("tiles.tif") { try writeTIFF(shorts, to: $0, compression: .deflate, tileSize: 16, bigTIFF: true) }
        try add("mask.png") { try writePNG(gray8: Raster(width: 30, height: 20, pixels: (0..<600).map { $0 % 7 == 0 ? 255 : 0 }), to: $0) }
        try add("rgb.png") { try writePNG(rgb: (0..<(30 * 3 * 10)).map { UInt8($0 % 251) }, width: 30, height: 10, to: $0) }
        try add("deep16.png") { try writePNG(gray16: shorts, to: $0) }
        try add("movie.mrcs") { try writeMRC([shorts, shorts], to: $0, pixelSizeNM: 0.1) }
        try add("halves.mrc") { try writeMRC([floats], to: $0, float16: true) }
        try add("series_1.ser") { try writeSER([floats, floats], to: $0, pixelSizeNM: 0.02) }
        try add("velox.emd") { try writeVeloxEMD([VeloxImageSignal(title: "Ceta", frames: [shorts, shorts], pixelSizeNM: 0.02),
                                                   VeloxImageSignal(title: "HAADF", frames: [shorts])], to: $0) }
        try add("velox-single.emd") { try writeVeloxEMD([VeloxImageSignal(title: "Ceta", frames: [floats], pixelSizeNM: 0.02)], to: $0) }
        try add("berkeley.emd") {
            try writeBerkeleyEMD([BerkeleyEMDSignal(title: "frame", planes: [floats], calibrations: [AxisCalibration(), AxisCalibration()])], to: $0)
        }
        if let reference = referenceFolder {
            for name in ["dm/dmTest_float32_nonSquare_diffPixelSize.dm3", "dm/dmTest_float32_nonSquare_diffPixelSize.dm4",
                         "formats/Custom_movie.mrc", "formats/128x128x5-diffraction_preview_1.ser", "formats/fei_example_tem_stack.emd"] {
                files.append((name, try Data(contentsOf: reference.appendingPathComponent(name))))
            }
        }
        return files
    }

    /// A DM file whose root holds groups nested `depth` deep.
    func deeplyNestedDM(version: Int, depth: Int) -> Data {
        var bytes = [UInt8]()
        func be(_ value: UInt64, _ size: Int) { for i in (0..<size).reversed() { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) } }
        let field = version == 3 ? 4 : 8
        be(UInt64(version), 4); be(0, field); be(1, 4)
        var sizeFields = [Int]()
        for _ in 0..<depth {
            bytes += [0, 1]; be(1, field)          // sorted, open, one tag
            bytes += [20]; be(0, 2)                 // a group entry without a name
            if version == 4 { sizeFields.append(bytes.count); be(0, 8) }
        }
        bytes += [0, 1]; be(0, field)
        // Each DM4 group's size runs to the end of the file (nothing follows the innermost).
        for at in sizeFields {
            let size = UInt64(bytes.count - at - 8)
            for i in 0..<8 { bytes[at + i] = UInt8(truncatingIfNeeded: size >> UInt64(8 * (7 - i))) }
        }
        return Data(bytes)
    }

    /// PNG chunks carry a CRC; recomputing it lets a mutation reach the decoder (absurd sizes in
    /// IHDR, broken palettes) instead of stopping at the checksum.
    func fixPNGChecksums(_ bytes: inout [UInt8]) {
        var at = 8
        while at + 12 <= bytes.count {
            let length = Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
            guard length <= bytes.count - at - 12 else { return }
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes[(at + 4)..<(at + 8 + length)] {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            crc ^= 0xFFFF_FFFF
            for i in 0..<4 { bytes[at + 8 + length + i] = UInt8(truncatingIfNeeded: crc >> UInt32(8 * (3 - i))) }
            at += 12 + length
        }
    }

    func mutate(_ original: Data, _ random: inout SplitMix64) -> (Data, String) {
        let isPNG = original.starts(with: [0x89, 0x50, 0x4E, 0x47])
        var (data, what) = rawMutate(original, &random)
        if isPNG && random.next() % 2 == 0 {
            var bytes = [UInt8](data)
            fixPNGChecksums(&bytes)
            data = Data(bytes)
            what += ", checksums fixed"
        }
        return (data, what)
    }

    func rawMutate(_ original: Data, _ random: inout SplitMix64) -> (Data, String) {
        var bytes = [UInt8](original)
        let interesting: [UInt64] = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x8000_0000,
                                     0x7FFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF, UInt64(original.count), UInt64(original.count) * 2]
        switch random.next() % 6 {
        case 0:
            let length = Int(random.next() % UInt64(bytes.count))
            return (Data(bytes.prefix(length)), "truncated to \(length)")
        case 1:
            let n = 1 + Int(random.next() % 16)
            for _ in 0..<n { bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next()) }
            return (Data(bytes), "\(n) random bytes")
        case 2, 3:
            // An absurd size or count written over a structure field (headers sit early).
            let window = min(bytes.count, random.next() % 2 == 0 ? 512 : bytes.count)
            let at = Int(random.next() % UInt64(max(window - 8, 1)))
            let value = interesting[Int(random.next() % UInt64(interesting.count))]
            let size = [1, 2, 4, 8][Int(random.next() % 4)]
            let bigEndian = random.next() % 2 == 0
            for i in 0..<size where at + i < bytes.count {
                let shift = bigEndian ? 8 * (size - 1 - i) : 8 * i
                bytes[at + i] = UInt8(truncatingIfNeeded: value >> UInt64(shift))
            }
            return (Data(bytes), "value \(value) (\(size) bytes) at \(at)")
        case 4:
            // A block of the file copied over another place (duplicated headers, IFD cycles).
            let length = 1 + Int(random.next() % 64)
            let from = Int(random.next() % UInt64(bytes.count)), to = Int(random.next() % UInt64(bytes.count))
            for i in 0..<length where from + i < bytes.count && to + i < bytes.count { bytes[to + i] = bytes[from + i] }
            return (Data(bytes), "block of \(length) from \(from) to \(to)")
        default:
            let at = Int(random.next() % UInt64(bytes.count))
            let count = Int(random.next() % 32)
            bytes.insert(contentsOf: (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: at)
            return (Data(bytes), "\(count) bytes inserted at \(at)")
        }
    }

    /// Runs every reader on `bytes`; fails the test when an error lacks the file or the offset.
    func exercise(_ bytes: Data, name: String, what: String) {
        func check(_ body: () throws -> Void) {
            do { try body() } catch let error as FormatError {
                XCTAssertEqual(error.file, name, "\(what): \(error)")
                XCTAssertNotNil(error.offset, "\(what): error without an offset: \(error)")
            } catch {
                XCTFail("\(what): not a FormatError: \(error)")
            }
        }
        check { _ = try readMicrographHeader(bytes: bytes, name: name) }
        check { _ = try readMicrograph(bytes: bytes, name: name) }
        check { _ = try readFrame(bytes: bytes, name: name) }
        check { _ = try readFrame(bytes: bytes, name: name, selecting: ImageSelection(plane: .sum)) }
        if name.hasSuffix(".emd") { check { _ = try readMicrograph(bytes: bytes, name: name, selecting: ImageSelection(signal: .index(1))) } }
        if name.hasSuffix(".png") { check { _ = try readLabelMask(bytes: bytes, name: name) } }
    }

    func testMutatedFilesFailCleanly() throws {
        let seeds = try seedFiles()
        for (name, bytes) in seeds {
            XCTAssertNoThrow(try readMicrograph(bytes: bytes, name: name), "seed \(name) must be valid")
        }
        var random = SplitMix64(seed: FuzzTests.seed)
        let peakBefore = peakResidentBytes()
        var failures = 0
        for index in 0..<FuzzTests.caseCount {
            let (name, original) = seeds[index % seeds.count]
            var caseRandom = random.derived(UInt64(index))
            let (mutated, what) = mutate(original, &caseRandom)
            let before = testRun?.failureCount ?? 0
            // HRTEM_FUZZ_TRACE=PREFIX names each case before it runs and keeps its bytes as
            // PREFIX-<case>-<seed name>, so a crash can be reproduced from the last one.
            if let trace = ProcessInfo.processInfo.environment["HRTEM_FUZZ_TRACE"] {
                FileHandle.standardError.write(Data("case \(index) [\(name): \(what)]\n".utf8))
                try? mutated.write(to: URL(fileURLWithPath: trace + "-\(index)-" + URL(fileURLWithPath: name).lastPathComponent))
            }
            exercise(mutated, name: name, what: "case \(index) [\(name): \(what)]")
            if (testRun?.failureCount ?? 0) > before { failures += 1; if failures > 20 { break } }
        }
        _ = random.next()
        let growth = peakResidentBytes() - peakBefore
        XCTAssertLessThan(growth, 512 << 20, "fuzzing grew the peak resident memory by \(growth >> 20) MiB")
    }

    func testDeepNestingAndAbsurdCountsAreRefused() throws {
        for version in [3, 4] {
            let name = "deep.dm\(version)"
            XCTAssertThrowsError(try readMicrographHeader(bytes: deeplyNestedDM(version: version, depth: 10_000), name: name)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(name) && text.contains("at byte") && text.contains("nested"), text)
            }
            // A shallow tree without images is a clear error too.
            XCTAssertThrowsError(try readMicrographHeader(bytes: deeplyNestedDM(version: version, depth: 3), name: name)) { error in
                XCTAssertTrue("\(error)".contains("ImageList"), "\(error)")
            }
            // A root group that claims four billion tags.
            var bytes = [UInt8](deeplyNestedDM(version: version, depth: 0))
            for i in (bytes.count - (version == 3 ? 4 : 8))..<bytes.count { bytes[i] = 0xFF }
            XCTAssertThrowsError(try readMicrographHeader(bytes: Data(bytes), name: name)) { error in
                XCTAssertTrue("\(error)".contains("at byte"), "\(error)")
            }
        }
    }

    func testTIFFDirectoryCycleEnds() throws {
        // Page 2's "next directory" pointer aimed back at page 1: libtiff detects the loop.
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("cycle.tif")
        let page = Raster(width: 4, height: 4, pixels: [UInt8](repeating: 9, count: 16))
        try writeTIFF(pages: [page, page], to: url)
        var bytes = [UInt8](try Data(contentsOf: url))
        let first = Int(bytes[4]) | Int(bytes[5]) << 8 | Int(bytes[6]) << 16 | Int(bytes[7]) << 24
        let firstCount = Int(bytes[first]) | Int(bytes[first + 1]) << 8
        let secondPointer = first + 2 + 12 * firstCount
        let second = Int(bytes[secondPointer]) | Int(bytes[secondPointer + 1]) << 8 | Int(bytes[secondPointer + 2]) << 16
        let secondCount = Int(bytes[second]) | Int(bytes[second + 1]) << 8
        let last = second + 2 + 12 * secondCount
        for i in 0..<4 { bytes[last + i] = UInt8(truncatingIfNeeded: first >> (8 * i)) }
        let header = try readMicrographHeader(bytes: Data(bytes), name: "cycle.tif")
        XCTAssertLessThanOrEqual(header.otherImages.count, 1)
    }

    func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }
}
