import TestSupport
import XCTest

final class HelpTests: XCTestCase {
    func testVersionAndHelp() throws {
        let version = try runHrtem(["--version"])
        XCTAssertEqual(version.status, 0, version.standardError)
        XCTAssertFalse(version.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        let help = try runHrtem(["--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.standardOutput.contains("hrtem"), help.standardOutput)
    }
}
