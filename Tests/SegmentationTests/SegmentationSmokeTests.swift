import Segmentation
import XCTest

final class SegmentationSmokeTests: XCTestCase {
    func testModuleLinks() { XCTAssertEqual(SegmentationModule.name, "Segmentation") }
}
