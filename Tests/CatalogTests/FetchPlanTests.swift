import Catalog
import Foundation
import Micrograph
import Mirrors
import TestSupport
import XCTest

/// Which files a query selects on a mirror (no network: planning only).
final class FetchPlanTests: XCTestCase {
    func testPlanMapsFramesAndLabelsAndNoticesWhatIsPresent() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let catalog = try CatalogStore()
        let local = folder.appendingPathComponent("local.dm3")
        try Data(repeating: 7, count: 100).write(to: local)
        let stored = Data(repeating: 9, count: 50)
        let store = ContentStore(root: folder)
        let storedFile = try store.add(fileAt: { let u = folder.appendingPathComponent("s.dm3"); try stored.write(to: u); return u }())
        try catalog.insertFrames([
            FrameRecord(session: "2021_08_26 5nm Au/Ultrathin Carbon", fileName: "a.dm3", material: "Au",
                        path: local.path, byteSize: 100, sha256: String(repeating: "1", count: 64)),
            FrameRecord(session: "S", fileName: "b.dm3", material: "Au",
                        path: local.path, byteSize: 999, sha256: String(repeating: "2", count: 64)),
            FrameRecord(session: "S", fileName: "c.dm3", material: "Au",
                        byteSize: Int64(stored.count), sha256: storedFile.sha256),
            FrameRecord(session: "S", fileName: "d.dm3", material: "Ag"),
        ])
        var mirror = MirrorDefinition.nersc
        mirror.baseURL = "http://127.0.0.1:9/m/"
        let client = MirrorClient(definition: mirror, downloader: Downloader(store: store), environment: [:])
        let items = try FrameFetcher.plan(query: "material = \"Au\"", labels: true, catalog: catalog, client: client)
        XCTAssertEqual(items.map(\.kind), [.frame, .label, .frame, .label, .frame, .label])
        XCTAssertEqual(items[0].request.url, "http://127.0.0.1:9/m/2021_08_26%205nm%20Au/Ultrathin%20Carbon/a.dm3")
        XCTAssertEqual(items[1].request.url, "http://127.0.0.1:9/m/2021_08_26%205nm%20Au/Ultrathin%20Carbon/Labels/a_label.png")
        XCTAssertEqual(items[0].request.expected, ExpectedContent(size: 100, sha256: String(repeating: "1", count: 64)))
        XCTAssertEqual(items[0].localCopy, local, "ingested locally with the recorded size: not fetched again")
        XCTAssertNil(items[2].localCopy, "size differs from the record: fetch")
        XCTAssertTrue(items[4].alreadyStored)
        XCTAssertFalse(items[0].alreadyStored)
        XCTAssertThrowsError(try FrameFetcher.plan(query: "material = \"Au\"", labels: false, catalog: catalog,
                                                   client: MirrorClient(definition: .dryad, downloader: Downloader(store: store))))
        XCTAssertThrowsError(try FrameFetcher.plan(query: "material = ", labels: false, catalog: catalog, client: client))
    }

    func testRecordFillsFileColumnsAndKeepsMetadata() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let catalog = try CatalogStore()
        try catalog.insertFrames([FrameRecord(session: "S", fileName: "a.dm3", material: "Au", dose: 423)])
        let frameFile = folder.appendingPathComponent("a.dm3")
        try writeDM(Raster<Float>(width: 8, height: 4, pixels: Array(repeating: 1, count: 32)), to: frameFile, version: .dm3)
        let store = ContentStore(root: folder)
        let file = try store.add(fileAt: frameFile)
        let client = MirrorClient(definition: .nersc, downloader: Downloader(store: store), environment: [:])
        let item = try XCTUnwrap(FrameFetcher.plan(query: "file = \"a.dm3\"", labels: false, catalog: catalog, client: client).first)
        var report = FetchRecordReport()
        try FrameFetcher.record(item, file: file, in: catalog, report: &report)
        let frame = try XCTUnwrap(catalog.frame(session: "S", file: "a.dm3"))
        XCTAssertEqual(frame.path, file.url.path)
        XCTAssertEqual(frame.sha256, file.sha256)
        XCTAssertEqual(frame.byteSize, file.size)
        XCTAssertEqual(frame.format, "dm3")
        XCTAssertEqual(frame.width, 8)
        XCTAssertEqual(frame.height, 4)
        XCTAssertEqual(frame.pixelType, "float32")
        XCTAssertEqual(frame.dose, 423, "metadata kept")
        XCTAssertNotNil(frame.facts, "recorded through ingest's per-file path, facts included")
        XCTAssertEqual(report.framesRecorded, 1)
        XCTAssertEqual(report.unreadable, [])
    }
}
