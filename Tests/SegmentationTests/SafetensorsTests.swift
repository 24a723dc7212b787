import Foundation
import Micrograph
import XCTest

final class SafetensorsTests: XCTestCase {
    private let sample = SafetensorsFile(
        tensors: [SafetensorsTensor(name: "a.weight", shape: [2, 3], float32: [1, 2, 3, 4, 5, -6.5]),
                  SafetensorsTensor(name: "a.num_batches_tracked", int64: 7)],
        metadata: ["source": "test"])

    func testRoundTripKeepsNamesShapesValuesAndMetadata() throws {
        let bytes = safetensorsBytes(sample)
        XCTAssertEqual((bytes.count - 8 - 32) % 8, 0, "header padded to 8 bytes")
        let parsed = try parseSafetensors(bytes, file: "x")
        XCTAssertEqual(parsed.metadata, ["source": "test"])
        XCTAssertEqual(parsed["a.weight"]?.shape, [2, 3])
        XCTAssertEqual(parsed["a.weight"]?.float32Values, [1, 2, 3, 4, 5, -6.5])
        XCTAssertEqual(parsed["a.num_batches_tracked"]?.int64Value, 7)
        XCTAssertEqual(parsed["a.num_batches_tracked"]?.shape, [])
        XCTAssertEqual(safetensorsBytes(parsed), bytes, "same tensors give the same bytes")
    }

    func testDamagedFilesAreRejectedWithTheirLocation() {
        let bytes = safetensorsBytes(sample)
        XCTAssertThrowsError(try parseSafetensors(Array(bytes.prefix(5)), file: "short")) {
            XCTAssertTrue("\($0)".contains("short"), "\($0)")
        }
        XCTAssertThrowsError(try parseSafetensors(Array(bytes.dropLast(4)), file: "cut")) {
            XCTAssertTrue("\($0)".contains("outside"), "\($0)")
        }
        func withHeader(_ json: String, buffer: Int) -> [UInt8] {
            var header = Array(json.utf8)
            while header.count % 8 != 0 { header.append(0x20) }
            var out = (0..<8).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) }
            out += header
            out += [UInt8](repeating: 0, count: buffer)
            return out
        }
        XCTAssertThrowsError(try parseSafetensors(withHeader(#"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, buffer: 12), file: "f")) {
            XCTAssertTrue("\($0)".contains("needs 12"), "\($0)")
        }
        XCTAssertThrowsError(try parseSafetensors(withHeader(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"u":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, buffer: 12), file: "f")) {
            XCTAssertTrue("\($0)".contains("overlaps"), "\($0)")
        }
        XCTAssertThrowsError(try parseSafetensors(withHeader(#"{"t":{"dtype":"Q8","shape":[2],"data_offsets":[0,2]}}"#, buffer: 2), file: "f")) {
            XCTAssertTrue("\($0)".contains("unknown dtype"), "\($0)")
        }
        var notJSON = bytes
        notJSON[8] = UInt8(ascii: "x")
        XCTAssertThrowsError(try parseSafetensors(notJSON, file: "f")) {
            XCTAssertTrue("\($0)".contains("JSON"), "\($0)")
        }
    }
}
