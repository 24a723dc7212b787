import Catalog
@testable import CatalogServer
import Experiments
import Hummingbird
import Micrograph
import TestSupport
import XCTest

/// The parts of the server that decide what a request may reach and what a picture holds.
final class CatalogServerTests: XCTestCase {
    func testPyramidOfA4096FrameReachesFullResolution() {
        let pyramid = FrameImages.Pyramid(width: 4096, height: 4096)
        XCTAssertEqual(pyramid.levels.map(\.width), [4096, 2048, 1024, 512, 256])
        XCTAssertEqual(pyramid.levels[0].rows, 16)
        XCTAssertEqual(pyramid.tileCount, 256 + 64 + 16 + 4 + 1)
        // Odd sizes round up, so every pixel lands in a tile.
        let odd = FrameImages.Pyramid(width: 1000, height: 300)
        XCTAssertEqual(odd.levels.map(\.width), [1000, 500, 250])
        XCTAssertEqual(odd.levels.map(\.height), [300, 150, 75])
        XCTAssertEqual(odd.levels[0].columns, 4)
        XCTAssertEqual(odd.levels[0].rows, 2)
    }

    func testHalvingAveragesBlocksAndKeepsOddEdges() {
        let image = Raster<UInt8>(width: 3, height: 2, pixels: [0, 100, 7, 200, 255, 9])
        let half = FrameImages.halved(image)
        XCTAssertEqual(half.width, 2)
        XCTAssertEqual(half.height, 1)
        let left: Int = (0 + 100 + 200 + 255 + 2) / 4, right: Int = (7 + 7 + 9 + 9 + 2) / 4
        XCTAssertEqual(half.pixels, [UInt8(left), UInt8(right)])
    }

    func testDisplayGrayStretchesPercentilesAndSurvivesNonFiniteValues() {
        var pixels = (0..<10_000).map { Float($0) }
        pixels[5] = .nan
        pixels[6] = .infinity
        let gray = FrameImages.displayGray(Raster(width: 100, height: 100, pixels: pixels))
        XCTAssertEqual(gray.pixels[0], 0)
        XCTAssertEqual(gray.pixels[9_999], 255)
        XCTAssertEqual(gray.pixels[5], 0)
        XCTAssertEqual(Int(gray.pixels[5_000]), 128, accuracy: 2)
        let flat = FrameImages.displayGray(Raster(width: 4, height: 4, repeating: 3))
        XCTAssertEqual(Set(flat.pixels).count, 1, "a flat frame stays flat")
    }

    func testPathRulesRefuseEveryTraversalForm() {
        for path in ["/..", "/../x", "/a/../b", "/a/./b", "/%2e%2e/x", "/%252e%252e", "/a%2fb", "/a\\b", "//x",
                     "/a\u{0}b", "relative", "/frames/1/%00"] {
            XCTAssertNotNil(RequestGuard<BasicRequestContext>.pathProblem(path), path)
        }
        for path in ["/", "/frames/12", "/frames/12/tiles/0/1/2", "/datasets", "/assets/app.js", "/a..b/c..d"] {
            XCTAssertNil(RequestGuard<BasicRequestContext>.pathProblem(path), path)
        }
    }

    func testFormValuesDecodePlusAndPercent() {
        let values = formValues("q=dose+~+884+%2B-+20&page=2&name=a%26b&empty=&broken")
        XCTAssertEqual(values["q"], "dose ~ 884 +- 20")
        XCTAssertEqual(values["page"], "2")
        XCTAssertEqual(values["name"], "a&b")
        XCTAssertEqual(values["empty"], "")
        XCTAssertNil(values["broken"])
        XCTAssertEqual(formValues(nil), [:])
    }

    func testFacetClausesAreQueriesThatSelectTheirValue() throws {
        let store = try CatalogStore()
        try store.insertFrames([
            FrameRecord(session: "s \"quoted\" \\ slash", fileName: "a", material: "Au", particleSizeNm: 2.2),
            FrameRecord(session: "t", fileName: "b", material: "Ag", particleSizeNm: 5),
        ])
        for field in [QueryField.session, .material, .size] {
            for group in try CatalogSummary.compute(in: store, by: [field]).groups {
                let clause = Pages.clause(field, group.values[0])
                XCTAssertEqual(try store.count(matching: clause), group.frames, clause)
            }
        }
        XCTAssertEqual(Pages.clause(.labeled, "yes"), "labeled")
        XCTAssertEqual(Pages.clause(.labeled, "no"), "not labeled")
        XCTAssertEqual(Pages.clause(.material, ""), "")
    }

    func testEscapingLeavesNoMarkup() {
        XCTAssertEqual(escapeMarkup("<script>\"a\" & 'b'</script>"), "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;")
        XCTAssertEqual(encodeQueryComponent("a b+c&d=\"e\""), "a%20b%2Bc%26d%3D%22e%22")
    }
}
