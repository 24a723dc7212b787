import Catalog
import Foundation
import Micrograph
import TestSupport
import XCTest

/// `hrtem serve` over HTTP, as a browser and as an attacker would talk to it: the built binary
/// on a loopback port, serving a data folder made from the bundled fixtures.
final class ServeCommandTests: XCTestCase {
    var folder: URL!
    var server: ServedCatalog!
    /// A file beside the data folder that no answer may ever contain.
    var canary: URL!
    let canaryText = "canary-\(UUID().uuidString)"

    override func setUpWithError() throws {
        let fixtures = packageRoot.appendingPathComponent("Fixtures/synthetic")
        guard FileManager.default.fileExists(atPath: fixtures.path) else { throw XCTSkip("Fixtures/synthetic is absent") }
        let root = try makeTemporaryFolder("hrtem-serve")
        folder = root.appendingPathComponent("data")
        canary = root.appendingPathComponent("secret.txt")
        try Data(canaryText.utf8).write(to: canary)
        let data = ["--data", folder.path]
        let imported = try runHrtem(["import-metadata", fixtures.appendingPathComponent("Dataset_metadata.csv").path] + data)
        XCTAssertEqual(imported.status, 0, imported.standardError)
        let ingested = try runHrtem(["ingest", fixtures.path] + data)
        XCTAssertEqual(ingested.status, 0, ingested.standardError)
    }

    override func tearDownWithError() throws {
        server?.stop()
        if let folder { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
    }

    func start(_ arguments: [String] = []) throws -> ServedCatalog {
        server = try ServedCatalog(dataFolder: folder, extraArguments: arguments)
        return server
    }

    /// The catalog file's bytes and modification time: what "nothing changed" means.
    func catalogState() throws -> (Data, Date) {
        let file = folder.appendingPathComponent("catalog.sqlite")
        let modified = try FileManager.default.attributesOfItem(atPath: file.path)[.modificationDate] as? Date
        return (try Data(contentsOf: file), modified ?? .distantPast)
    }

    func frameCount() throws -> String {
        let count = try runHrtem(["query", "labeled or not labeled", "--count", "--data", folder.path])
        XCTAssertEqual(count.status, 0, count.standardError)
        return count.standardOutput
    }

    func testPagesShowTheCatalogAFrameAndItsPictures() throws {
        let server = try start()
        let catalog = try server.get("/")
        XCTAssertEqual(catalog.status, 200, catalog.text)
        XCTAssertTrue(catalog.head.lowercased().contains("content-security-policy: default-src 'self'"), catalog.head)
        let total = try XCTUnwrap(catalog.text.firstMatch(of: /data-total="(\d+)"/)).1
        XCTAssertEqual(String(total), try frameCount().trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertTrue(catalog.text.contains("<summary>material</summary>"), "facets from the summary")

        // A query narrows the grid; a facet link is a valid query.
        let selected = try server.get("/?q=" + "dose ~ 884 +- 20".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
        XCTAssertEqual(selected.status, 200)
        XCTAssertTrue(selected.text.contains("data-total=\"8\""), selected.text)
        let ids = selected.text.matches(of: /data-frame="(\d+)"/).map { String($0.1) }
        XCTAssertEqual(ids.count, 8)

        // The CLI's error and caret, inline, with a 400.
        let bad = try server.get("/?q=" + "material = \"Au\" and sise = 5".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
        XCTAssertEqual(bad.status, 400)
        XCTAssertTrue(bad.text.contains("query error at column 21: unknown field &#39;sise&#39;"), bad.text)
        XCTAssertTrue(bad.text.contains("\n" + String(repeating: " ", count: 20) + "^</pre>"), bad.text)
        XCTAssertTrue(bad.text.contains("valid fields: material"), bad.text)

        // A frame: every field, its tags, a thumbnail, the tile pyramid and the label overlay.
        let id = ids[0]
        let frame = try server.get("/frames/\(id)")
        XCTAssertEqual(frame.status, 200)
        XCTAssertTrue(frame.text.contains("<th>sha256</th>"), frame.text)
        XCTAssertTrue(frame.text.contains("<table id=\"tags\">"), "DM tags shown")
        XCTAssertTrue(frame.text.contains("id=\"overlay-toggle\""), "a labeled frame offers the overlay")
        let thumbnail = try server.get("/frames/\(id)/thumbnail")
        XCTAssertEqual(thumbnail.status, 200)
        XCTAssertEqual(Array(thumbnail.body.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        var status = ""
        for _ in 0..<100 where !status.contains("\"ready\":true") {
            status = try server.get("/frames/\(id)/pyramid").text
            if !status.contains("\"ready\":true") { Thread.sleep(forTimeInterval: 0.1) }
        }
        XCTAssertTrue(status.contains("\"ready\":true") && status.contains("\"overlay\":true"), status)
        let tile = try server.get("/frames/\(id)/tiles/0/0/0")
        XCTAssertEqual(tile.status, 200)
        XCTAssertEqual(Array(tile.body.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        XCTAssertEqual(try server.get("/frames/\(id)/overlay/0/0/0").status, 200)
        XCTAssertEqual(try server.get("/frames/\(id)/tiles/0/99/99").status, 404)
        // Cached content-addressed in the data folder.
        let sha = try XCTUnwrap(frame.text.firstMatch(of: /<th>sha256<\/th><td>([0-9a-f]{64})<\/td>/)).1
        XCTAssertTrue(FileManager.default.fileExists(
            atPath: folder.appendingPathComponent("cache/tiles/\(sha)/pyramid.json").path))

        // Another process writes the catalog: the next page (cached per catalog state) shows it.
        let writer = try CatalogStore(folder: DataFolder(url: folder))
        try writer.upsertFrame(FrameRecord(session: "added later", fileName: "zr.dm3", material: "Zr"))
        let changed = try server.get("/")
        XCTAssertTrue(changed.text.contains("data-total=\"\(Int(total)! + 1)\""), changed.text)
        XCTAssertTrue(changed.text.contains(">Zr</a>"), "the facets follow")

        for page in ["/datasets", "/models", "/experiments", "/assets/app.js", "/assets/style.css"] {
            XCTAssertEqual(try server.get(page).status, 200, page)
        }
        XCTAssertEqual(try server.get("/frames/999999").status, 404)
    }

    func testTraversalNeverReachesAFile() throws {
        let before = try catalogState()
        let server = try start()
        let canaryPath = canary.path
        let targets = [
            "/../secret.txt", "/../../../../etc/passwd", "/frames/../../secret.txt",
            "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/frames/1/..%2f..%2f..%2fsecret.txt",
            "/%252e%252e/%252e%252e/etc/passwd", "/frames/%252e%252e%252fcatalog.sqlite",
            "/..%5c..%5csecret.txt", "/..\\..\\secret.txt", "//etc/passwd", canaryPath, "/frames/" + canaryPath,
            "/frames/1/tiles/../../../../../etc/passwd", "/frames/1/tiles/0/0/..%2f..%2fpyramid.json",
            "/datasets/..%2f..%2fcatalog.sqlite/patches/0", "/datasets/../catalog.sqlite/verify",
            "/catalog.sqlite", "/cache/", "/assets/../catalog.sqlite", "/frames/1%00/thumbnail",
            "/frames/-1", "/frames/0x1", "/frames/1e3", "/frames/99999999999999999999",
            "/frames/1/tiles/-1/0/0", "/frames/1/tiles/0/0/999999", "/datasets/abc/patches/0",
            "http://127.0.0.1/etc/passwd", "/etc/passwd",
        ]
        for target in targets {
            let answer = try server.get(target)
            XCTAssertTrue((400..<500).contains(answer.status), "\(target): \(answer.status) \(answer.head)")
            XCTAssertFalse(answer.text.contains(canaryText), "\(target) returned the canary")
            XCTAssertFalse(answer.text.contains("root:x:0:0"), "\(target) returned /etc/passwd")
            XCTAssertFalse(answer.text.contains("SQLite format 3"), "\(target) returned the catalog")
        }
        XCTAssertEqual(try server.get("/..%2fsecret.txt").text.contains("path not allowed"), true, "a clear reason")
        server.stop()
        let after = try catalogState()
        XCTAssertEqual(before.0, after.0, "catalog bytes unchanged")
        XCTAssertEqual(before.1, after.1, "catalog modification time unchanged")
    }

    func testInjectionStringsSelectNothingAndChangeNothing() throws {
        let before = try catalogState()
        let count = try frameCount()
        let server = try start()
        let queries = [
            "material = \"Au\\\"; DROP TABLE frames; --\"",
            "material = 'Au'' OR ''1''=''1'",
            "session = \"x' OR 1=1 --\"",
            "material = Au; DELETE FROM frames",
            "1; DROP TABLE frames",
            "material = \"Au\" UNION SELECT * FROM sqlite_master",
            "material = \"Au\") OR (1=1",
            "file = \"../../secret.txt\"",
            "material in (\"Au\", \"x\"); ATTACH DATABASE '/tmp/x' AS y; --",
        ]
        for query in queries {
            let answer = try server.get("/?q=" + query.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            XCTAssertTrue(answer.status == 200 || answer.status == 400, "\(query): \(answer.status)")
            if answer.status == 200 {
                XCTAssertTrue(answer.text.contains("data-total=\"0\""), "\(query) selected frames: \(answer.text.prefix(300))")
            } else {
                XCTAssertTrue(answer.text.contains("id=\"query-error\""), "\(query): \(answer.text.prefix(300))")
            }
            XCTAssertFalse(answer.text.contains(canaryText))
        }
        server.stop()
        XCTAssertEqual(try frameCount(), count)
        let after = try catalogState()
        XCTAssertEqual(before.0, after.0, "catalog bytes unchanged")
        XCTAssertEqual(before.1, after.1, "catalog modification time unchanged")
    }

    func testOversizedAndMalformedRequestsGetA4xx() throws {
        let before = try catalogState()
        let server = try start()
        XCTAssertEqual(try server.get("/?q=" + String(repeating: "a", count: 5000)).status, 414)
        XCTAssertEqual(try server.get("/?q=" + String(repeating: "a", count: 2500)).status, 413)
        XCTAssertEqual(try server.get("/?page=0").status, 400)
        XCTAssertEqual(try server.get("/?page=x").status, 400)
        let bigHeader = try server.get("/", headers: ["X-Padding: " + String(repeating: "p", count: 20_000)])
        XCTAssertTrue((400..<500).contains(bigHeader.status), "\(bigHeader.status) \(bigHeader.head)")
        for raw in ["GARBAGE\r\n\r\n", "GET /\r\n\r\n", "GET / HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
                    "GET / HTTP/9.9\r\nHost: x\r\n\r\n", "\u{0}\u{1}\u{2}\r\n\r\n"] {
            let answer = try server.send(Data(raw.utf8))
            // NIO's parser refuses these; the server answers 400 or closes without serving a page.
            XCTAssertTrue(answer.status == 0 || (400..<500).contains(answer.status), "\(raw.debugDescription): \(answer.status)")
            XCTAssertFalse(answer.text.contains("result-count"))
        }
        // Writes are refused on a read-only server, whatever the body.
        let post = "POST /recipes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 24\r\nConnection: close\r\n\r\nname=evil&query=labeled"
        XCTAssertEqual(try server.send(Data(post.utf8)).status, 403)
        for method in ["PUT", "DELETE", "PATCH"] {
            let answer = try server.send(Data("\(method) / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
            XCTAssertEqual(answer.status, 403, method)
            XCTAssertTrue(answer.text.contains("read-only"), answer.text)
        }
        // A name other than loopback's (what a DNS-rebinding page would send) is refused.
        for host in ["evil.example", "evil.example:\(server.port)", "127.0.0.1.evil.example"] {
            let answer = try server.send(Data("GET / HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8))
            XCTAssertEqual(answer.status, 403, host)
            XCTAssertFalse(answer.text.contains("result-count"), host)
        }
        XCTAssertEqual(try server.send(Data("GET / HTTP/1.1\r\nHost: localhost:\(server.port)\r\nConnection: close\r\n\r\n".utf8)).status, 200)
        server.stop()
        let after = try catalogState()
        XCTAssertEqual(before.0, after.0, "catalog bytes unchanged")
        XCTAssertEqual(before.1, after.1, "catalog modification time unchanged")
    }

    func testAllowWritesCreatesARecipeFromThePage() throws {
        let server = try start(["--allow-writes"])
        XCTAssertTrue(try server.get("/datasets").text.contains("New recipe"))
        func post(_ form: String) throws -> ServedCatalog.Answer {
            try server.send(Data(("POST /recipes HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                                  + "Content-Length: \(form.utf8.count)\r\nConnection: close\r\n\r\n" + form).utf8))
        }
        let created = try post("name=high-dose&query=dose+%7E+884+%2B-+20&patch=64&folds=2")
        XCTAssertEqual(created.status, 303, created.text)
        let page = try server.get("/datasets").text
        XCTAssertTrue(page.contains("id=\"r-high-dose\""), page)
        XCTAssertTrue(page.contains("dose ~ 884 +- 20"), page)
        // Build a version of it from the page, in the background.
        XCTAssertTrue(page.contains("action=\"/builds\""), page)
        func postBuild(_ name: String) throws -> ServedCatalog.Answer {
            let form = "name=" + name
            return try server.send(Data(("POST /builds HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                                         + "Content-Length: \(form.utf8.count)\r\nConnection: close\r\n\r\n" + form).utf8))
        }
        XCTAssertEqual(try postBuild("high-dose").status, 303)
        XCTAssertEqual(try postBuild("nothing-such").status, 404)
        var datasets = ""
        for _ in 0..<300 where !datasets.contains("built high-dose@") {
            datasets = try server.get("/datasets").text
            XCTAssertFalse(datasets.contains("build failed"), datasets)
            if !datasets.contains("built high-dose@") { Thread.sleep(forTimeInterval: 0.1) }
        }
        XCTAssertTrue(datasets.contains("built high-dose@"), datasets)
        XCTAssertTrue(datasets.contains("<table class=\"folds\">"), datasets)

        let bad = try post("name=broken&query=sise+%3D+5")
        XCTAssertEqual(bad.status, 400)
        XCTAssertTrue(bad.text.contains("unknown field"), bad.text)
        server.stop()
        let listed = try runHrtem(["dataset", "list", "--data", folder.path])
        XCTAssertTrue(listed.standardOutput.contains("high-dose"), listed.standardOutput + listed.standardError)
        let verified = try runHrtem(["dataset", "verify", "high-dose", "--data", folder.path])
        XCTAssertEqual(verified.status, 0, verified.standardOutput + verified.standardError)
    }

    func testNoCatalogIsAClearError() throws {
        let empty = try makeTemporaryFolder("hrtem-serve-empty")
        defer { try? FileManager.default.removeItem(at: empty) }
        let result = try runHrtem(["serve", "--port", "0", "--data", empty.path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.standardError.contains("no catalog here"), result.standardError)
        XCTAssertFalse(FileManager.default.fileExists(atPath: empty.appendingPathComponent("catalog.sqlite").path))
    }

    /// A real browser (Debian's headless Chromium, driven over the DevTools protocol by
    /// scripts/browser-check.py) runs a query, opens a frame, toggles the label overlay and
    /// zooms to 1:1; screenshots of the pages land in .build/serve-screenshots.
    func testBrowserRunsAQueryOpensAFrameAndTogglesTheLabel() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") else {
            throw XCTSkip("chromium is not installed: scripts/ensure-test-tools.sh (run by make test) installs it")
        }
        let server = try start()
        let shots = packageRoot.appendingPathComponent(".build/serve-screenshots")
        let run = try runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                 ["python3", packageRoot.appendingPathComponent("scripts/browser-check.py").path,
                                  server.baseURL, shots.path])
        XCTAssertEqual(run.status, 0, run.standardError)
        let seen = try XCTUnwrap(try JSONSerialization.jsonObject(
            with: Data((run.standardOutput.split(separator: "\n").last ?? "").utf8)) as? [String: Any], run.standardOutput)
        let total = try frameCount().trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(seen["catalog_total"] as? String, total)
        XCTAssertEqual(seen["catalog_cards"] as? Int, Int(total))
        XCTAssertEqual(seen["catalog_thumbnails_loaded"] as? Int, Int(total), "every thumbnail decoded in the browser")
        XCTAssertEqual(seen["query_total"] as? String, "8")
        XCTAssertEqual(seen["query_cards"] as? Int, 8)
        XCTAssertEqual(seen["query_box"] as? String, "dose ~ 884 +- 20")
        let error = try XCTUnwrap(seen["error_text"] as? String)
        XCTAssertTrue(error.contains("query error at column 21: unknown field 'sise'"), error)
        XCTAssertTrue(error.contains(String(repeating: " ", count: 20) + "^"), error)
        XCTAssertTrue((seen["frame_path"] as? String)?.hasPrefix("/frames/") ?? false)
        XCTAssertEqual(seen["viewer_ready"] as? Bool, true)
        let tiles = try XCTUnwrap(seen["tiles"] as? Int)
        XCTAssertGreaterThan(tiles, 0)
        XCTAssertEqual(seen["tiles_loaded"] as? Int, tiles, "every tile decoded")
        XCTAssertEqual(seen["overlay_tiles"] as? Int, tiles)
        XCTAssertEqual(seen["overlay_display_before"] as? String, "block")
        XCTAssertEqual(seen["overlay_state_after"] as? String, "label hidden")
        XCTAssertEqual(seen["overlay_display_after"] as? String, "none")
        XCTAssertEqual(seen["overlay_state_again"] as? String, "label shown")
        XCTAssertEqual(seen["zoom_one"] as? String, "1:1")
        XCTAssertEqual(seen["zoom_one_level"] as? String, "0", "1:1 shows the full-resolution tiles")
        XCTAssertGreaterThan((seen["fields_rows"] as? Int) ?? 0, 10)
        XCTAssertGreaterThan((seen["tags_rows"] as? Int) ?? 0, 0)
        XCTAssertEqual(seen["datasets_heading"] as? String, "Datasets")
        for name in ["catalog", "query", "query-error", "frame", "frame-no-label", "datasets", "models", "experiments"] {
            let file = shots.appendingPathComponent("\(name).png")
            let bytes = [UInt8]((try? Data(contentsOf: file)) ?? Data())
            XCTAssertEqual(Array(bytes.prefix(4)), [0x89, 0x50, 0x4E, 0x47], name)
        }
    }

    /// A dataset built, a model trained and tested: the datasets page shows the version, its
    /// folds, patches and verification; the models page the card and training curve; the
    /// experiments page the result; a frame page segments the frame with the model on demand.
    func testDatasetModelAndPredictionPages() throws {
        let data = ["--data", folder.path]
        func hrtem(_ arguments: [String]) throws -> CommandResult {
            let result = try runHrtem(arguments + data)
            XCTAssertEqual(result.status, 0, "hrtem \(arguments.joined(separator: " ")): \(result.standardError)")
            return result
        }
        _ = try hrtem(["dataset", "create", "coarse", "--where", "dose ~ 884 +- 5 and pixel_scale = 0.042",
                       "--patch", "32", "--min-particle-pixels", "100", "--folds", "2"])
        _ = try hrtem(["dataset", "build", "coarse"])
        let model = folder.deletingLastPathComponent().appendingPathComponent("model")
        let trained = try hrtem(["train", "coarse", "--fold", "1", "--epochs", "2", "--batch", "8", "--widths", "4",
                                 "--bottleneck", "8", "--threads", "1", "--out", model.path])
        let id = try XCTUnwrap(trained.standardOutput.components(separatedBy: "recorded in the catalog as model ").dropFirst().first?
            .split(separator: "\n").first.map(String.init), trained.standardOutput)
        let server = try start()

        let datasets = try server.get("/datasets")
        XCTAssertEqual(datasets.status, 200)
        let version = try XCTUnwrap(datasets.text.firstMatch(of: /\/datasets\/([0-9a-f]{64})\/verify/)).1
        XCTAssertTrue(datasets.text.contains("<table class=\"folds\">"), datasets.text)
        let patch = try server.get("/datasets/\(version)/patches/0")
        XCTAssertEqual(patch.status, 200)
        XCTAssertEqual(Array(patch.body.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        let verified = try server.get("/datasets/\(version)/verify")
        XCTAssertTrue(verified.text.contains("\"ok\":true"), verified.text)

        let models = try server.get("/models")
        XCTAssertTrue(models.text.contains("id=\"m-\(id)\""), models.text)
        XCTAssertTrue(models.text.contains("<polyline class=\"validation\""), "training curve drawn")
        XCTAssertTrue(models.text.contains("loss per epoch (2)"), models.text)
        let experiments = try server.get("/experiments")
        XCTAssertTrue(experiments.text.contains("<table id=\"matrix\""), experiments.text)
        XCTAssertTrue(experiments.text.contains("coarse@"), experiments.text)

        // The frame page offers the model; asking segments the frame once, in the background.
        let frameId = try XCTUnwrap(try server.get("/?q=labeled").text.firstMatch(of: /data-frame="(\d+)"/)).1
        XCTAssertTrue(try server.get("/frames/\(frameId)").text.contains("<option value=\"\(id)\">"))
        let ask = "/frames/\(frameId)/prediction?model=" + id.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        var answer = ""
        for _ in 0..<300 where !answer.contains("\"ready\":true") {
            answer = try server.get(ask).text
            XCTAssertFalse(answer.contains("\"error\""), answer)
            if !answer.contains("\"ready\":true") { Thread.sleep(forTimeInterval: 0.1) }
        }
        let key = try XCTUnwrap(answer.firstMatch(of: /"key":"([0-9a-f]{64})"/), answer).1
        let tile = try server.get("/frames/\(frameId)/prediction/\(key)/0/0/0")
        XCTAssertEqual(tile.status, 200)
        XCTAssertEqual(Array(tile.body.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        XCTAssertEqual(try server.get("/frames/\(frameId)/prediction?model=nope").status, 404)
        XCTAssertEqual(try server.get("/frames/\(frameId)/prediction/\(String(repeating: "G", count: 64))/0/0/0").status, 400)
    }
}
