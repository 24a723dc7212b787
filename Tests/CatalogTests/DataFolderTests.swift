import Catalog
import XCTest

final class DataFolderTests: XCTestCase {
    func testResolutionOrder() {
        XCTAssertEqual(DataFolder.resolve(explicit: "/x/y", environment: ["HRTEM_HOME": "/z"]).url.path, "/x/y")
        XCTAssertEqual(DataFolder.resolve(explicit: nil, environment: ["HRTEM_HOME": "/z"]).url.path, "/z")
        XCTAssertEqual(DataFolder.resolve(explicit: nil, environment: [:], currentDirectory: "/w").url.path, "/w/hrtem-data")
    }
}
