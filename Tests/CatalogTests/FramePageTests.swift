import Catalog
import XCTest

/// `CatalogStore.page`: the same frames as the full selection, in catalog order, sliced; the
/// selection cache follows the catalog's changes.
final class FramePageTests: XCTestCase {
    func makeStore() throws -> CatalogStore {
        let store = try CatalogStore()
        // Rows without a metadata row come after those with one; ids break ties.
        try store.insertFrames((0..<250).map { index in
            FrameRecord(session: "s\(index % 3)", fileName: "f\(index)", metadataRow: index % 5 == 0 ? nil : 1000 - index,
                        material: index % 2 == 0 ? "Au" : "Ag", particleSizeNm: Double(index % 4))
        })
        return store
    }

    func testPagesSliceTheFullSelectionInCatalogOrder() throws {
        let store = try makeStore()
        let cache = FrameSelectionCache()
        for text in [nil, "material = \"Au\"", "material = \"Au\" and size in (1, 2)"] {
            let query = try text.map { try FrameQuery.parse($0) }
            let expected = try query.map { try store.frames(matching: $0) } ?? store.allFrames()
            var seen: [FrameRecord] = []
            var offset = 0
            while true {
                let page = try store.page(matching: query, offset: offset, limit: 40, cache: cache)
                XCTAssertEqual(page.total, expected.count, text ?? "all")
                XCTAssertEqual(page.offset, min(offset, expected.count))
                if page.frames.isEmpty { break }
                seen += page.frames
                offset += 40
            }
            XCTAssertEqual(seen.map(\.id), expected.map(\.id), text ?? "all")
            XCTAssertEqual(seen, expected)
        }
        let beyond = try store.page(matching: nil, offset: 10_000, limit: 10)
        XCTAssertEqual(beyond.total, 250)
        XCTAssertEqual(beyond.offset, 250)
        XCTAssertTrue(beyond.frames.isEmpty)
    }

    func testTheCacheSeesWrites() throws {
        let store = try makeStore()
        let cache = FrameSelectionCache()
        let query = try FrameQuery.parse("material = \"Pt\"")
        XCTAssertEqual(try store.page(matching: query, offset: 0, limit: 10, cache: cache).total, 0)
        let before = try store.changeCounter()
        try store.upsertFrame(FrameRecord(session: "s9", fileName: "new", material: "Pt"))
        XCTAssertNotEqual(try store.changeCounter(), before)
        let after = try store.page(matching: query, offset: 0, limit: 10, cache: cache)
        XCTAssertEqual(after.total, 1)
        XCTAssertEqual(after.frames.first?.fileName, "new")
    }
}
