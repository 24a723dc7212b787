import Mirrors
import XCTest

final class MirrorsSmokeTests: XCTestCase {
    func testModuleLinks() { XCTAssertEqual(MirrorsModule.name, "Mirrors") }
}
