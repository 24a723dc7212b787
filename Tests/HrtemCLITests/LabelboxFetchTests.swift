import Foundation
import Micrograph
import TestSupport
import XCTest

/// `hrtem labelbox import` downloading masks with `LABELBOX_API_KEY`, through the built binary,
/// against a local server that wants the key as a bearer token and can expire URLs.
final class LabelboxFetchTests: XCTestCase {
    var root: URL!
    var data: URL!
    var served: URL!
    var servers: [LocalMirror] = []
    let width = 16, height = 8
    let key = "lb-test-key-3f9a"

    override func setUpWithError() throws {
        root = try makeTemporaryFolder("hrtem-labelbox-fetch")
        data = root.appendingPathComponent("hrtem-data")
        let frames = root.appendingPathComponent("frames")
        let blank = Raster(width: width, height: height, pixels: [Float](repeating: 1, count: width * height))
        for file in ["frameA.dm3", "frameB.dm3"] {
            try writeDM(blank, to: frames.appendingPathComponent("s1/\(file)"), pixelSizeNM: 0.02)
        }
        let ingest = try runHrtem(["ingest", frames.path, "--data", data.path])
        XCTAssertEqual(ingest.status, 0, ingest.standardError)
        // The server's tree: masks at Labelbox-like paths with no file extension.
        served = root.appendingPathComponent("served")
        try writePNG(gray8: mask { $0 < 10 }, to: served.appendingPathComponent("api/v1/tasks/t/masks/featA1/index/1"))
        try writePNG(gray8: mask { $0 >= 5 && $0 < 20 }, to: served.appendingPathComponent("api/v1/tasks/t/masks/featA2/index/1"))
        try writePNG(gray8: mask { $0 % 2 == 0 }, to: served.appendingPathComponent("api/v1/tasks/t/masks/featB/index/1"))
    }

    override func tearDownWithError() throws {
        servers.forEach { $0.stop() }
        try? FileManager.default.removeItem(at: root)
    }

    func mask(_ on: (Int) -> Bool) -> Raster<UInt8> {
        Raster(width: width, height: height, pixels: (0..<(width * height)).map { on($0) ? 255 : 0 })
    }

    func serve(_ faults: [String: [[String: Any]]] = [:]) throws -> LocalMirror {
        let server = try LocalMirror(root: served, faults: faults, bearer: key)
        servers.append(server)
        return server
    }

    /// An export of two rows whose masks are on `base`; written to its own folder (no masks there).
    func writeExport(base: String) throws -> URL {
        func row(_ id: String, _ external: String, _ features: [String]) -> String {
            let objects = features.map {
                #"{"feature_id": "\#($0)", "name": "particle", "mask": {"url": "\#(base)api/v1/tasks/t/masks/\#($0)/index/1"}}"#
            }.joined(separator: ", ")
            return #"{"data_row": {"id": "\#(id)", "external_id": "\#(external)"}, "media_attributes": {"width": \#(width), "height": \#(height)}, "projects": {"projX": {"name": "HRTEM", "labels": [{"id": "label-\#(id)", "annotations": {"objects": [\#(objects)], "classifications": []}}]}}}"#
        }
        let export = root.appendingPathComponent("export/export.ndjson")
        try FileManager.default.createDirectory(at: export.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writeFileAtomically(Data((row("rowA", "frameA.dm3", ["featA1", "featA2"]) + "\n" + row("rowB", "frameB.dm3", ["featB"]) + "\n").utf8),
                                to: export)
        return export
    }

    func importExport(_ export: URL, _ server: LocalMirror?, key: String?, extra: [String] = []) throws -> CommandResult {
        var environment = ["LABELBOX_API_KEY": key ?? ""]
        environment["HRTEM_LABELBOX_URL"] = server?.baseURL ?? ""
        return try runHrtem(["labelbox", "import", export.path, "--data", data.path, "--attempts", "2"] + extra,
                            environment: environment)
    }

    func show(_ frame: String) throws -> String {
        try runHrtem(["show", frame, "--data", data.path]).standardOutput
    }

    /// Every byte under the data folder, to look for what must never be written.
    func dataFolderBytes() throws -> Data {
        var all = Data()
        let walker = FileManager.default.enumerator(at: data, includingPropertiesForKeys: [.isRegularFileKey])
        while let next = walker?.nextObject() as? URL {
            if (try next.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true { all.append(try Data(contentsOf: next)) }
        }
        return all
    }

    func testMasksAreDownloadedWithTheKeyAndNeitherKeyNorURLIsKept() throws {
        let server = try serve()
        let export = try writeExport(base: server.baseURL)
        // One mask is a local file: it is used, and only the other two are downloaded.
        let masks = root.appendingPathComponent("masks")
        try writePNG(gray8: mask { $0 < 10 }, to: masks.appendingPathComponent("featA1.png"))
        let result = try importExport(export, server, key: key, extra: ["--masks", masks.path])
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertTrue(result.standardOutput.contains("2 data row(s): 2 label(s) new"), result.standardOutput)
        let log = server.requests()
        XCTAssertEqual(log.map(\.path).sorted(), ["api/v1/tasks/t/masks/featA2/index/1", "api/v1/tasks/t/masks/featB/index/1"])
        XCTAssertEqual(Set(log.map(\.authorization)), ["Bearer \(key)"])
        XCTAssertTrue(try show("s1/frameA.dm3").contains("20 particle pixels"), "union of the local and the downloaded mask")
        XCTAssertTrue(try show("s1/frameB.dm3").contains("\(width * height / 2) particle pixels"))

        let written = try dataFolderBytes()
        XCTAssertNil(written.range(of: Data(key.utf8)), "the API key is never written")
        XCTAssertNil(written.range(of: Data("127.0.0.1:\(server.port)".utf8)), "no mask URL is kept")
        XCTAssertNil(written.range(of: Data("masks/featB".utf8)), "no mask URL is kept")
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("tmp").path)) ?? []
        XCTAssertEqual(leftovers, [], "no partial download left")

        // Without --masks and with nothing local, every mask is downloaded; the labels are unchanged.
        let again = try importExport(export, server, key: key)
        XCTAssertEqual(again.status, 0, again.standardError)
        XCTAssertTrue(again.standardOutput.contains("0 label(s) new, 0 changed, 2 unchanged"), again.standardOutput)
        XCTAssertEqual(server.requests().count, 2 + 3)
    }

    func testAWrongKeyIsRefusedAndNothingIsImported() throws {
        let server = try serve()
        let export = try writeExport(base: server.baseURL)
        let result = try importExport(export, server, key: "not-the-key")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(Set(server.requests().map(\.status)), [401], "the server checked the header")
        XCTAssertTrue(result.standardError.contains("export.ndjson:1: data row 'frameA.dm3'"), result.standardError)
        XCTAssertTrue(result.standardError.contains("HTTP 401") && result.standardError.contains("export the project again"),
                      result.standardError)
        XCTAssertFalse(try show("s1/frameA.dm3").contains("labelbox:"))
        XCTAssertFalse(try show("s1/frameB.dm3").contains("labelbox:"))
    }

    func testAnExpiredURLNamesItsRowAndNothingIsHalfImported() throws {
        // Row A's masks are fine; row B's URL has expired (410), so neither row is imported.
        let server = try serve(["api/v1/tasks/t/masks/featB/index/1": [["kind": "status", "code": 410]]])
        let export = try writeExport(base: server.baseURL)
        let result = try importExport(export, server, key: key)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.standardError.contains("export.ndjson:2: data row 'frameB.dm3', mask of object 'featB'"), result.standardError)
        XCTAssertTrue(result.standardError.contains("HTTP 410") && result.standardError.contains("expired")
                      && result.standardError.contains("export the project again"), result.standardError)
        XCTAssertTrue(server.requests().contains { $0.path.contains("featA1") && $0.status == 200 }, "row A's masks were fetched")
        XCTAssertFalse(try show("s1/frameA.dm3").contains("labelbox:"), "nothing half-imported")
        XCTAssertFalse(try show("s1/frameB.dm3").contains("labelbox:"))
    }

    func testWithoutAKeyOrForAnotherHostNothingIsRequested() throws {
        let server = try serve()
        let export = try writeExport(base: server.baseURL)
        let local = try importExport(export, server, key: nil)
        XCTAssertEqual(local.status, 0, local.standardError)
        XCTAssertTrue(local.standardOutput.contains("0 label(s) new") && local.standardOutput.contains("set LABELBOX_API_KEY"),
                      local.standardOutput)
        // A key, but the export points at a server that is not Labelbox and not named by the user.
        let elsewhere = try importExport(export, nil, key: key)
        XCTAssertEqual(elsewhere.status, 0, elsewhere.standardError)
        XCTAssertTrue(elsewhere.standardOutput.contains("not a Labelbox address"), elsewhere.standardOutput)
        XCTAssertEqual(server.requests().count, 0, "the key never left for an unknown host")
    }
}
