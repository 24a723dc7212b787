import Catalog
import Foundation
import Micrograph
import TestSupport
import XCTest

/// End-to-end: the built `hrtem` binary's `dataset` commands on a fixture catalog.
final class DatasetCommandTests: XCTestCase {
    func testCreateBuildKillRebuildListShowVerifyExport() throws {
        let fixture = try DatasetFixture(frames: 8, sessions: 2)
        defer { fixture.remove() }
        let data = ["--data", fixture.dataFolder.url.path]
        let create = try runHrtem(["dataset", "create", "au5", "--where", "material = \"Au\" and dose ~ 423 +- 20",
                                   "--patch", "64", "--min-particle-pixels", "100", "--folds", "3"] + data)
        XCTAssertEqual(create.status, 0, create.standardError)
        XCTAssertTrue(create.standardOutput.contains("8 frames selected"), create.standardOutput)
        let bad = try runHrtem(["dataset", "create", "bad", "--where", "material = ", "--patch", "60"] + data)
        XCTAssertNotEqual(bad.status, 0)

        // a build killed mid-way (SIGKILL) leaves nothing registered and nothing published
        let process = Process()
        process.executableURL = productsFolder.appendingPathComponent("hrtem")
        process.arguments = ["dataset", "build", "au5", "--jobs", "1"] + data
        var environment = ProcessInfo.processInfo.environment
        environment["HRTEM_DATASET_BUILD_DELAY_MS"] = "400"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let temporary = fixture.dataFolder.temporaryFolder
        let deadline = Date().addingTimeInterval(60)
        var sawPartialBuild = false
        while Date() < deadline && process.isRunning {
            if let entry = try? FileManager.default.contentsOfDirectory(atPath: temporary.path).first(where: { $0.hasPrefix("dataset-") }),
               let size = try? FileManager.default.attributesOfItem(atPath: temporary.appendingPathComponent(entry).appendingPathComponent("images.npy").path)[.size] as? Int,
               size > 128 {
                sawPartialBuild = true
                break
            }
            usleep(20_000)
        }
        XCTAssertTrue(sawPartialBuild, "the build never got under way")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        XCTAssertEqual(try DatasetRegistry.versions(in: fixture.store).count, 0)
        let published = (try? FileManager.default.contentsOfDirectory(atPath: fixture.dataFolder.datasetsFolder.appendingPathComponent("au5").path)) ?? []
        XCTAssertEqual(published, [])

        // the rebuild succeeds and clears the leftovers
        let build = try runHrtem(["dataset", "build", "au5"] + data)
        XCTAssertEqual(build.status, 0, build.standardError)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temporary.path).filter { $0.hasPrefix("dataset-") }, [])
        let versions = try DatasetRegistry.versions(in: fixture.store)
        XCTAssertEqual(versions.count, 1)
        let versionId = try XCTUnwrap(versions.first?.versionId)
        XCTAssertTrue(build.standardOutput.contains("au5@\(versionId)"), build.standardOutput)
        let again = try runHrtem(["dataset", "build", "au5"] + data)
        XCTAssertTrue(again.standardOutput.contains("already built"), again.standardOutput)

        let list = try runHrtem(["dataset", "list"] + data)
        XCTAssertTrue(list.standardOutput.contains("au5  1 version"), list.standardOutput)
        let show = try runHrtem(["dataset", "show", "au5@\(versionId.prefix(8))"] + data)
        XCTAssertEqual(show.status, 0, show.standardError)
        XCTAssertTrue(show.standardOutput.contains("fold 2 seed 621"), show.standardOutput)
        let verify = try runHrtem(["dataset", "verify", "au5"] + data)
        XCTAssertEqual(verify.status, 0, verify.standardOutput + verify.standardError)
        XCTAssertTrue(verify.standardOutput.contains("intact"))

        let export = fixture.root.appendingPathComponent("export")
        let exported = try runHrtem(["dataset", "export", "au5", "--to", export.path] + data)
        XCTAssertEqual(exported.status, 0, exported.standardError)
        let version = try DatasetRegistry.locate("au5", in: fixture.dataFolder, store: fixture.store)
        XCTAssertEqual(try Data(contentsOf: export.appendingPathComponent("images.npy")), try Data(contentsOf: version.imagesFile))

        let h5 = fixture.root.appendingPathComponent("h5")
        let exportedH5 = try runHrtem(["dataset", "export", "au5", "--to", h5.path, "--format", "hdf5"] + data)
        XCTAssertEqual(exportedH5.status, 0, exportedH5.standardError)
        let images = h5.appendingPathComponent("au5_Images.h5"), labels = h5.appendingPathComponent("au5_Labels.h5")
        XCTAssertTrue(FileManager.default.fileExists(atPath: images.path))
        if pythonCanImport("h5py") {
            let check = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [peerPython, "-c", """
                import h5py, numpy as np, sys
                a = h5py.File(sys.argv[1])['images'][:]; b = np.load(sys.argv[2])
                l = h5py.File(sys.argv[3])['labels'][:]; m = np.load(sys.argv[4])
                assert a.dtype == np.float64 and l.dtype == np.float32, (a.dtype, l.dtype)
                assert np.array_equal(a, b.astype(np.float64)) and np.array_equal(l, m.astype(np.float32))
                print(a.shape)
                """, images.path, version.imagesFile.path, labels.path, version.labelsFile.path])
            XCTAssertEqual(check.status, 0, check.standardError)
            XCTAssertTrue(check.standardOutput.contains("(\(version.patchCount), 64, 64)"), check.standardOutput)
        }

        // one flipped byte is found
        var bytes = try Data(contentsOf: version.labelsFile)
        bytes[bytes.count - 5] ^= 0x01
        try bytes.write(to: version.labelsFile)
        let broken = try runHrtem(["dataset", "verify", "au5"] + data)
        XCTAssertNotEqual(broken.status, 0)
        XCTAssertTrue(broken.standardOutput.contains("labels.npy: SHA-256"), broken.standardOutput)
    }

    func testBuildOfAMissingFrameNamesItAndTheFetchCommand() throws {
        let fixture = try DatasetFixture(frames: 2)
        defer { fixture.remove() }
        let data = ["--data", fixture.dataFolder.url.path]
        let label = try XCTUnwrap(fixture.store.labels(frameId: fixture.store.allFrames()[1].id!).first?.path)
        try FileManager.default.removeItem(atPath: label)
        _ = try runHrtem(["dataset", "create", "au5", "--where", "material = \"Au\"", "--patch", "64"] + data)
        let build = try runHrtem(["dataset", "build", "au5"] + data)
        XCTAssertNotEqual(build.status, 0)
        XCTAssertTrue(build.standardError.contains("label missing"), build.standardError)
        XCTAssertTrue(build.standardError.contains("hrtem fetch --where 'material = \"Au\"' --labels"), build.standardError)
    }
}
