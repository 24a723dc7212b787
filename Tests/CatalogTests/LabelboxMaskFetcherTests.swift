import Catalog
import Foundation
import Mirrors
import XCTest

/// Where the Labelbox API key may go: an export is untrusted input, so its mask URLs must not be
/// able to send the key to a host of their choosing.
final class LabelboxMaskFetcherTests: XCTestCase {
    func fetcher(_ environment: [String: String]) -> LabelboxMaskFetcher? {
        let store = ContentStore(root: URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("unused"))
        return LabelboxMaskFetcher.fromEnvironment(environment, downloader: Downloader(store: store))
    }

    func testTheKeyGoesOnlyToLabelboxOverHTTPSOrToTheNamedServer() throws {
        XCTAssertNil(fetcher([:]), "no key: local masks only")
        XCTAssertNil(fetcher(["LABELBOX_API_KEY": ""]))
        let labelbox = try XCTUnwrap(fetcher(["LABELBOX_API_KEY": "k"]))
        XCTAssertTrue(labelbox.mayReceiveKey("https://api.labelbox.com/api/v1/tasks/t/masks/f/index/1"))
        XCTAssertTrue(labelbox.mayReceiveKey("https://labelbox.com/masks/f"))
        XCTAssertFalse(labelbox.mayReceiveKey("http://api.labelbox.com/masks/f"), "never in clear text")
        XCTAssertFalse(labelbox.mayReceiveKey("https://labelbox.com.example.org/masks/f"))
        XCTAssertFalse(labelbox.mayReceiveKey("https://evil.example.org/labelbox.com/masks/f"))
        XCTAssertFalse(labelbox.mayReceiveKey("https://notlabelbox.com/masks/f"))
        XCTAssertFalse(labelbox.mayReceiveKey("https://user@api.labelbox.com/masks/f"))
        XCTAssertFalse(labelbox.mayReceiveKey("http://127.0.0.1:8000/masks/f"))

        let local = try XCTUnwrap(fetcher(["LABELBOX_API_KEY": "k", "HRTEM_LABELBOX_URL": "http://127.0.0.1:8000"]))
        XCTAssertTrue(local.mayReceiveKey("http://127.0.0.1:8000/masks/f"))
        XCTAssertFalse(local.mayReceiveKey("http://127.0.0.1:80001/masks/f"), "the prefix ends at a path separator")
        XCTAssertFalse(local.mayReceiveKey("http://127.0.0.1:8000.example.org/masks/f"))
        XCTAssertTrue(local.mayReceiveKey("https://api.labelbox.com/masks/f"))
    }
}
