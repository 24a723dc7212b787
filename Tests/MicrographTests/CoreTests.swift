import Foundation
import Micrograph
import TestSupport
import XCTest

final class CoreTests: XCTestCase {
    func testSHA256KnownAnswers() throws {
        XCTAssertEqual(sha256Hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(sha256Hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("abc.txt")
        try writeFileAtomically(Data("abc".utf8), to: file)
        XCTAssertEqual(try sha256Hex(fileAt: file), sha256Hex(Data("abc".utf8)))
    }

    func testNPYRoundTripAndHeaderAlignment() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let values: [Float] = (0..<24).map { Float($0) * 0.5 - 3 }
        let array = NPYArray(shape: [2, 3, 4], float32: values)
        let file = folder.appendingPathComponent("a.npy")
        try writeNPY(array, to: file)
        let bytes = try Data(contentsOf: file)
        XCTAssertEqual((bytes.count - 24 * 4) % 64, 0, "data must start at a multiple of 64 bytes")
        let back = try readNPY(from: file)
        XCTAssertEqual(back, array)
        XCTAssertEqual(back.float32Values, values)
    }

    func testNPYRejectsTruncatedData() throws {
        var bytes = npyHeader(shape: [4, 4], pixelType: .float32)
        bytes += [UInt8](repeating: 0, count: 60)
        XCTAssertThrowsError(try parseNPY(bytes, file: "x.npy")) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains("x.npy") && text.contains("at byte"), text)
        }
    }

    func testSeededGeneratorIsReproducibleAndDerivedStreamsDiffer() {
        var a = SplitMix64(seed: 42), b = SplitMix64(seed: 42)
        XCTAssertEqual((0..<5).map { _ in a.next() }, (0..<5).map { _ in b.next() })
        var c = SplitMix64(seed: 42).derived(1), d = SplitMix64(seed: 42).derived(2)
        XCTAssertNotEqual(c.next(), d.next())
    }
}
