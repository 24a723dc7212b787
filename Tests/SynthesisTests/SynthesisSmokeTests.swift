import Synthesis
import XCTest

final class SynthesisSmokeTests: XCTestCase {
    func testModuleLinks() { XCTAssertEqual(SynthesisModule.name, "Synthesis") }
}
