import Experiments
import XCTest

final class ExperimentsSmokeTests: XCTestCase {
    func testModuleLinks() { XCTAssertEqual(ExperimentsModule.name, "Experiments") }
}
