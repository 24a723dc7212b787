import Preprocessing
import XCTest

final class PreprocessingSmokeTests: XCTestCase {
    func testModuleLinks() { XCTAssertEqual(PreprocessingModule.name, "Preprocessing") }
}
