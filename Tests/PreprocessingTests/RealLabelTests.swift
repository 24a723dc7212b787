import Foundation
import Micrograph
import Preprocessing
import TestSupport
import XCTest

/// Known answer on the study's real label mask (../shared/reference).
final class RealLabelTests: XCTestCase {
    func testFifteenOfSixtyFourTilesKept() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let url = reference.appendingPathComponent("20221109_Au_UTC_330kx_2640e_0p1596s_03_label.png")
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("\(url.path) is absent") }
        let label = try readLabelMask(at: url)
        XCTAssertEqual(label.width, 4096)
        XCTAssertEqual(label.height, 4096)
        XCTAssertEqual(label.pixels.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }, 370_050)
        XCTAssertEqual(tileOrigins(width: 4096, height: 4096, patch: 512, stride: 512).count, 64)
        let kept = keptPatches(label: label, patch: 512, stride: 512, minParticlePixels: 400)
        XCTAssertEqual(kept.count, 15)
        XCTAssertTrue(kept.allSatisfy { $0.particlePixels > 400 })
    }
}
