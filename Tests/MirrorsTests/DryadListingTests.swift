import Foundation
@testable import Mirrors
import TestSupport
import XCTest

/// A reply in the shape of Dryad's API v2 `versions/<id>/files` (HAL+JSON), written for these tests.
let dryadFilesSample = """
{
  "_links": {
    "self": {"href": "/api/v2/versions/171717/files"},
    "next": {"href": "/api/v2/versions/171717/files?page=2"}
  },
  "count": 3,
  "total": 3,
  "_embedded": {
    "stash:files": [
      {"_links": {"stash:download": {"href": "/api/v2/files/900001/download"}},
       "path": "Au_2p2nm_Images.h5", "url": null, "size": 2589720576, "mimeType": "application/x-hdf5",
       "status": "created", "digest": "\(String(repeating: "ab", count: 32))", "digestType": "sha-256"},
      {"_links": {"stash:download": {"href": "https://datadryad.org/api/v2/files/900002/download"}},
       "path": "Au_2p2nm_Labels.h5", "size": 1024, "digest": "0123456789ABCDEF0123456789abcdef", "digestType": "md5"},
      {"_links": {"stash:download": {"href": "/api/v2/files/900003/download"}},
       "path": "README.md", "size": 10, "digest": null, "digestType": null}
    ]
  }
}
"""

final class DryadListingTests: XCTestCase {
    func testParsesSizesDigestsAndLinks() throws {
        let source = "https://datadryad.org/api/v2/versions/171717/files"
        let page = try DryadAPI.filesPage(Data(dryadFilesSample.utf8), source: source)
        XCTAssertEqual(page.files.count, 3)
        XCTAssertEqual(page.next, "https://datadryad.org/api/v2/versions/171717/files?page=2")
        let images = page.files[0]
        XCTAssertEqual(images.path.description, "Au_2p2nm_Images.h5")
        XCTAssertEqual(images.size, 2_589_720_576)
        XCTAssertEqual(images.digest, PublishedDigest(algorithm: .sha256, hex: String(repeating: "ab", count: 32)))
        XCTAssertEqual(images.downloadURL, "https://datadryad.org/api/v2/files/900001/download")
        XCTAssertEqual(page.files[1].digest, PublishedDigest(algorithm: .md5, hex: "0123456789abcdef0123456789abcdef"))
        XCTAssertNil(page.files[2].digest)
    }

    func testDatasetReplyLeadsToTheVersionFiles() throws {
        let dataset = #"{"identifier": "doi:10.7941/D1SP93", "_links": {"stash:version": {"href": "/api/v2/versions/171717"}}}"#
        let api = "https://datadryad.org/api/v2/"
        let datasetURL = DryadAPI.datasetURL(api: api, doi: "doi:10.7941/D1SP93")
        XCTAssertEqual(datasetURL, "https://datadryad.org/api/v2/datasets/doi%3A10.7941%2FD1SP93")
        XCTAssertEqual(try DryadAPI.filesURL(fromDataset: Data(dataset.utf8), source: datasetURL),
                       "https://datadryad.org/api/v2/versions/171717/files")
    }

    func testMalformedListingsAreRefusedWithTheEntry() {
        let source = "https://datadryad.org/api/v2/versions/1/files"
        func parse(_ text: String) -> String {
            do { _ = try DryadAPI.filesPage(Data(text.utf8), source: source); return "parsed" } catch { return "\(error)" }
        }
        XCTAssertTrue(parse("[1,2]").contains("JSON object"))
        XCTAssertTrue(parse("{\"_embedded\": {}}").contains("stash:files"))
        XCTAssertTrue(parse(#"{"_embedded": {"stash:files": [{"size": 1}]}}"#).contains("stash:files[0] has no path"))
        XCTAssertTrue(parse(#"{"_embedded": {"stash:files": [{"path": "a.h5", "digest": "zz", "digestType": "sha-256", "_links": {"stash:download": {"href": "/d"}}}]}}"#)
            .contains("unusable digest"))
        XCTAssertTrue(parse(#"{"_embedded": {"stash:files": [{"path": "a.h5"}]}}"#).contains("stash:download"))
        // Path safety: a listing cannot name a place outside the data folder.
        for evil in ["../../etc/cron.d/x", "/etc/passwd", "a/../../b"] {
            let text = #"{"_embedded": {"stash:files": [{"path": "\#(evil)", "_links": {"stash:download": {"href": "/d"}}}]}}"#
            XCTAssertTrue(parse(text).contains("unsafe path"), evil)
        }
    }
}
