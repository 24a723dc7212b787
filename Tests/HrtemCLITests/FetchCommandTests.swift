import Foundation
import Micrograph
import TestSupport
import XCTest

/// `hrtem fetch` and `hrtem import-metadata --from study` end to end against a local mirror laid
/// out like the NERSC portal (frames and labels made by the project's own writers).
final class FetchCommandTests: XCTestCase {
    var work: URL!
    var tree: URL!
    var dataFolder: URL { work.appendingPathComponent("data") }
    var servers: [LocalMirror] = []
    let header = "File name,Date,Material,Nanoparticle Size (nm),Nanoparticle Shape,Support,Instrument,Dosage (e/A2),Pixel Scale (nm),Folder"
    let agFolder = "2022_02_02 5nm Ag/UT Carbon"
    let auFolder = "2021_10_06 2nm Au"
    let agFiles = ["20220202_Ag_UTC_330kx_2650e_0p1596s_01.dm3", "20220202_Ag_UTC_330kx_2650e_0p1596s_02.dm3"]
    let auFile = "20211006_Au_UTC_330kx_2650e_0p1596s_01.dm3"
    var table: String {
        (agFiles.map { "\($0),02/02/22,Ag,5,Sphere,UT Carbon,Team05,423,0.02,\(agFolder)" }
            + ["\(auFile),10/06/21,Au,2.2,Sphere,UT Carbon,Team05,423,0.02,\(auFolder)"])
            .reduce(header) { $0 + "\n" + $1 } + "\n"
    }

    override func setUpWithError() throws {
        work = try makeTemporaryFolder("hrtem-cli-fetch")
        tree = work.appendingPathComponent("tree")
        var random = SplitMix64(seed: 21)
        for (folder, file) in agFiles.map({ (agFolder, $0) }) + [(auFolder, auFile)] {
            let frameURL = tree.appendingPathComponent(folder).appendingPathComponent(file)
            try FileManager.default.createDirectory(at: frameURL.deletingLastPathComponent().appendingPathComponent("Labels"),
                                                    withIntermediateDirectories: true)
            let frame = Raster<Float>(width: 64, height: 48, pixels: (0..<(64 * 48)).map { _ in Float(random.nextUnitDouble() * 1000) })
            try writeDM(frame, to: frameURL, version: .dm3, pixelSizeNM: 0.02)
            let mask = Raster<UInt8>(width: 64, height: 48, pixels: (0..<(64 * 48)).map { $0 % 7 == 0 ? 255 : 0 })
            let stem = (file as NSString).deletingPathExtension
            try writePNG(gray8: mask, to: frameURL.deletingLastPathComponent().appendingPathComponent("Labels/\(stem)_label.png"))
        }
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("dataset_creation"), withIntermediateDirectories: true)
        try Data(table.utf8).write(to: tree.appendingPathComponent("dataset_creation/Dataset_metadata.csv"))
    }

    override func tearDown() {
        servers.forEach { $0.stop() }
        try? FileManager.default.removeItem(at: work)
    }

    func hrtem(_ arguments: [String], mirror: LocalMirror) throws -> CommandResult {
        try runHrtem(arguments, environment: ["HRTEM_HOME": dataFolder.path,
                                              "HRTEM_MIRROR_NERSC_URL": mirror.baseURL,
                                              "HRTEM_MIRROR_STUDY_METADATA_URL": mirror.baseURL])
    }

    func frames(_ query: String, _ mirror: LocalMirror) throws -> [[String: Any]] {
        let result = try hrtem(["query", query, "--format", "json"], mirror: mirror)
        XCTAssertEqual(result.status, 0, result.standardError)
        let parsed = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8))
        return parsed as? [[String: Any]] ?? (parsed as? [String: Any])?["frames"] as? [[String: Any]] ?? []
    }

    func testImportFromStudyThenFetchExactlyTheSelection() throws {
        let server = try LocalMirror(root: tree)
        servers.append(server)
        let imported = try hrtem(["import-metadata", "--from", "study"], mirror: server)
        XCTAssertEqual(imported.status, 0, imported.standardError)
        XCTAssertTrue(imported.standardError.contains("fetched Dataset_metadata.csv from study-metadata"), imported.standardError)
        XCTAssertEqual(try frames("material = \"Ag\" or material = \"Au\"", server).count, 3)

        let dry = try hrtem(["fetch", "--where", "material = \"Ag\"", "--labels", "--dry-run"], mirror: server)
        XCTAssertEqual(dry.status, 0, dry.standardError)
        XCTAssertTrue(dry.standardOutput.contains("4 files selected, 4 to fetch"), dry.standardOutput)
        XCTAssertTrue(dry.standardOutput.contains(server.baseURL + "2022_02_02%205nm%20Ag/UT%20Carbon/Labels/20220202_Ag_UTC_330kx_2650e_0p1596s_01_label.png"),
                      dry.standardOutput)
        XCTAssertEqual(server.requests().filter { $0.path.hasSuffix(".dm3") }.count, 0, "a dry run fetches nothing")

        let fetched = try hrtem(["fetch", "--where", "material = \"Ag\"", "--labels", "--jobs", "3"], mirror: server)
        XCTAssertEqual(fetched.status, 0, fetched.standardError)
        XCTAssertTrue(fetched.standardError.contains("fetched 4, skipped 0, failed 0"), fetched.standardError)
        XCTAssertTrue(fetched.standardError.contains("recorded 2 frames and 2 labels"), fetched.standardError)
        // Exactly the selection: the Au frame was not requested.
        XCTAssertFalse(server.requests().contains { $0.path.contains("Au") })

        for frame in try frames("material = \"Ag\"", server) {
            let sha = try XCTUnwrap(frame["sha256"] as? String)
            let path = try XCTUnwrap(frame["path"] as? String)
            XCTAssertEqual(path, dataFolder.appendingPathComponent("store/\(sha.prefix(2))/\(sha)").path)
            let original = tree.appendingPathComponent(agFolder).appendingPathComponent(frame["file"] as? String ?? frame["file_name"] as? String ?? "")
            XCTAssertEqual(try sha256Hex(fileAt: URL(fileURLWithPath: path)), try sha256Hex(fileAt: original))
            XCTAssertEqual(frame["width"] as? Int, 64)
            XCTAssertEqual(frame["height"] as? Int, 48)
            XCTAssertEqual(frame["format"] as? String, "dm3")
        }
        XCTAssertEqual(try frames("labeled", server).count, 2)
        XCTAssertEqual(try frames("material = \"Au\"", server).first?["sha256"] as? String, nil)

        // A rerun finds everything stored under the recorded digests and transfers nothing.
        let before = server.requests().count
        let again = try hrtem(["fetch", "--where", "material = \"Ag\"", "--labels"], mirror: server)
        XCTAssertEqual(again.status, 0, again.standardError)
        XCTAssertTrue(again.standardError.contains("fetched 0, skipped 4, failed 0"), again.standardError)
        XCTAssertEqual(server.requests().count, before)
    }

    func testChangedFileOnTheMirrorIsQuarantinedAndMissingOneFails() throws {
        let server = try LocalMirror(root: tree)
        servers.append(server)
        try Data(table.utf8).write(to: work.appendingPathComponent("table.csv"))
        XCTAssertEqual(try hrtem(["import-metadata", work.appendingPathComponent("table.csv").path], mirror: server).status, 0)
        XCTAssertEqual(try hrtem(["fetch", "--where", "material = \"Au\""], mirror: server).status, 0)
        // The mirror's copy changes; the stored copy is removed so the fetch goes to the network.
        let frame = try XCTUnwrap(try frames("material = \"Au\"", server).first)
        try FileManager.default.removeItem(atPath: try XCTUnwrap(frame["path"] as? String))
        let original = tree.appendingPathComponent(auFolder).appendingPathComponent(auFile)
        var bytes = try Data(contentsOf: original)
        bytes[bytes.count - 1] ^= 0xFF
        try bytes.write(to: original)
        // And one Ag frame is missing from the mirror.
        try FileManager.default.removeItem(at: tree.appendingPathComponent(agFolder).appendingPathComponent(agFiles[0]))
        let result = try hrtem(["fetch", "--where", "material = \"Au\" or material = \"Ag\""], mirror: server)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.standardError.contains("fetched 1, skipped 0, failed 2"), result.standardError)
        XCTAssertTrue(result.standardError.contains("content does not match"), result.standardError)
        XCTAssertTrue(result.standardError.contains("quarantined at \(dataFolder.appendingPathComponent("quarantine").path)"), result.standardError)
        XCTAssertTrue(result.standardError.contains("HTTP 404"), result.standardError)
        // The catalog still holds the first download's digest, not the changed file's.
        XCTAssertEqual(try frames("material = \"Au\"", server).first?["sha256"] as? String, frame["sha256"] as? String)
    }

    func testFetchFromAUserAddedMirror() throws {
        let server = try LocalMirror(root: tree)
        servers.append(server)
        try Data(table.utf8).write(to: work.appendingPathComponent("table.csv"))
        let env = ["HRTEM_HOME": dataFolder.path]
        XCTAssertEqual(try runHrtem(["import-metadata", work.appendingPathComponent("table.csv").path], environment: env).status, 0)
        let add = try runHrtem(["mirror", "add", "lab", server.baseURL, "--layout", "nersc"], environment: env)
        XCTAssertEqual(add.status, 0, add.standardError)
        let fetched = try runHrtem(["fetch", "--where", "file = \"\(auFile)\"", "--mirror", "lab", "--labels"], environment: env)
        XCTAssertEqual(fetched.status, 0, fetched.standardError)
        XCTAssertTrue(fetched.standardError.contains("fetched 2, skipped 0, failed 0"), fetched.standardError)
        let dryad = try runHrtem(["fetch", "--where", "file = \"\(auFile)\"", "--mirror", "dryad"], environment: env)
        XCTAssertNotEqual(dryad.status, 0)
        XCTAssertTrue(dryad.standardError.contains("not frames"), dryad.standardError)
        let badQuery = try runHrtem(["fetch", "--where", "colour = 1"], environment: env)
        XCTAssertNotEqual(badQuery.status, 0)
        XCTAssertFalse(badQuery.standardError.isEmpty)
    }
}
