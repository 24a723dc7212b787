@testable import Catalog
import Foundation
import Micrograph
import TestSupport
import XCTest

/// `hrtem dataset import-h5`: a pair in the study's HDF5 layout becomes a dataset version.
final class DatasetImportH5Tests: XCTestCase {
    /// A version exported with `dataset export --format hdf5` comes back with the same patches,
    /// labels, folds and patch table.
    func testExportedPairImportsAsTheSameVersionContents() throws {
        let fixture = try DatasetFixture(frames: 6, sessions: 2)
        defer { fixture.remove() }
        let data = ["--data", fixture.dataFolder.url.path]
        let create = try runHrtem(["dataset", "create", "au5", "--where", "material = \"Au\" and dose ~ 423 +- 20",
                                   "--patch", "64", "--min-particle-pixels", "100", "--folds", "4"] + data)
        XCTAssertEqual(create.status, 0, create.standardError)
        let build = try runHrtem(["dataset", "build", "au5"] + data)
        XCTAssertEqual(build.status, 0, build.standardError)
        let original = try DatasetRegistry.locate("au5", in: fixture.dataFolder, store: fixture.store)
        XCTAssertGreaterThanOrEqual(original.patchCount, 4)
        let h5 = fixture.root.appendingPathComponent("h5")
        let exported = try runHrtem(["dataset", "export", "au5", "--to", h5.path, "--format", "hdf5"] + data)
        XCTAssertEqual(exported.status, 0, exported.standardError)
        let images = h5.appendingPathComponent("au5_Images.h5"), labels = h5.appendingPathComponent("au5_Labels.h5")

        let imported = try runHrtem(["dataset", "import-h5", "au5-h5", "--images", images.path, "--labels", labels.path,
                                     "--folds", "4"] + data)
        XCTAssertEqual(imported.status, 0, imported.standardError)
        XCTAssertTrue(imported.standardOutput.contains("imported au5-h5@"), imported.standardOutput)
        let copy = try DatasetRegistry.locate("au5-h5", in: fixture.dataFolder, store: fixture.store)
        XCTAssertEqual(copy.patchCount, original.patchCount)
        XCTAssertEqual(copy.patchSize, 64)
        for file in ["images.npy", "labels.npy", "folds.json", "patches.csv"] {
            XCTAssertEqual(try Data(contentsOf: copy.folder.appendingPathComponent(file)),
                           try Data(contentsOf: original.folder.appendingPathComponent(file)), file)
        }
        // Its lineage is the two files' digests.
        XCTAssertEqual(copy.info.frames.map(\.sha256), [try sha256Hex(fileAt: images)])
        XCTAssertEqual(copy.info.frames.map(\.labelSha256), [try sha256Hex(fileAt: labels)])
        XCTAssertEqual(try copy.verify(), [])
        let again = try runHrtem(["dataset", "import-h5", "au5-h5", "--images", images.path, "--labels", labels.path,
                                  "--folds", "4"] + data)
        XCTAssertTrue(again.standardOutput.contains("already imported"), again.standardOutput)
        XCTAssertEqual(try DatasetRegistry.versions(named: "au5-h5", in: fixture.store).count, 1)
        // A recipe's name is not taken over.
        let clash = try runHrtem(["dataset", "import-h5", "au5", "--images", images.path, "--labels", labels.path] + data)
        XCTAssertNotEqual(clash.status, 0)
        XCTAssertTrue(clash.standardError.contains("defined by a recipe"), clash.standardError)
    }

    func testBadPairsNameTheFileAndWhatIsWrong() throws {
        let fixture = try DatasetFixture(frames: 1, sessions: 1)
        defer { fixture.remove() }
        let folder = fixture.root.appendingPathComponent("pairs")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        func h5(_ name: String, key: String, float64: Bool, count: Int, values: (Int) -> Float) throws -> URL {
            let npy = folder.appendingPathComponent(name + ".npy")
            try writeNPY(NPYArray(shape: [count, 16, 16], float32: (0..<(count * 256)).map(values)), to: npy)
            return try DatasetExport.writeHDF5(from: npy, to: folder.appendingPathComponent(name + ".h5"), key: key,
                                               float64: float64, patch: 16)
        }
        let images = try h5("images", key: "images", float64: true, count: 5) { Float($0 % 97) * 0.5 }
        let halfLabels = try h5("half", key: "labels", float64: false, count: 5) { $0 == 3 * 256 + 2 * 16 + 7 ? 0.5 : 1 }
        let fewLabels = try h5("few", key: "labels", float64: false, count: 4) { _ in 0 }
        let wrongKey = try h5("key", key: "masks", float64: false, count: 5) { _ in 0 }
        let notH5 = folder.appendingPathComponent("text.h5")
        try Data("not hdf5".utf8).write(to: notH5)
        let data = ["--data", fixture.dataFolder.url.path]
        for (labels, expected) in [(halfLabels, "\(halfLabels.path): labels[3, 2, 7] is 0.5, expected 0 or 1"),
                                   (fewLabels, "\(fewLabels.path): labels is [4, 16, 16], the images in images.h5 are [5, 16, 16]"),
                                   (wrongKey, "\(wrongKey.path): no dataset 'labels' in the file"),
                                   (notH5, "\(notH5.path) at byte 0: not an HDF5 file")] {
            let result = try runHrtem(["dataset", "import-h5", "bad", "--images", images.path, "--labels", labels.path] + data)
            XCTAssertNotEqual(result.status, 0)
            XCTAssertTrue(result.standardError.contains(expected), result.standardError)
        }
        XCTAssertEqual(try DatasetRegistry.versions(in: fixture.store).count, 0)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: fixture.dataFolder.temporaryFolder.path))?.filter { $0.hasPrefix("dataset-") } ?? [], [])
    }
}
