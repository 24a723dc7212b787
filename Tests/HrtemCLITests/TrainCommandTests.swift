import Foundation
import Micrograph
import Preprocessing
import TestSupport
import XCTest

/// `hrtem train` and `hrtem evaluate` end to end, on a tiny synthetic dataset version made here.
final class TrainCommandTests: XCTestCase {
    private func makeVersion(in folder: URL) throws {
        try writeDiscVersionFolder(at: folder, name: "tiny", versionId: "version", count: 20, seed: 77,
                                   folds: FoldPlan(k: 1, rule: .study, folds: [Fold(fold: 0, seed: 962, train: Array(6..<20),
                                                                                    validation: [4, 5], test: [0, 1, 2, 3])]))
    }

    func testTrainThenEvaluateFromTheCommandLine() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let version = folder.appendingPathComponent("version")
        try FileManager.default.createDirectory(at: version, withIntermediateDirectories: true)
        try makeVersion(in: version)
        let modelFolder = folder.appendingPathComponent("model")
        let trained = try runHrtem(["train", version.path, "--fold", "0", "--epochs", "2", "--batch", "8",
                                    "--widths", "4", "--bottleneck", "8", "--noise-max", "0.3", "--threads", "1",
                                    "--out", modelFolder.path, "--data", folder.appendingPathComponent("data").path])
        XCTAssertEqual(trained.status, 0, trained.standardError)
        XCTAssertTrue(trained.standardOutput.contains("best epoch"), trained.standardOutput)
        XCTAssertTrue(trained.standardError.contains("epoch 2/2"), trained.standardError)
        for name in ["model.safetensors", "model.json", "training.csv", "checkpoint.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: modelFolder.appendingPathComponent(name).path), name)
        }
        let card = try JSONSerialization.jsonObject(with: Data(contentsOf: modelFolder.appendingPathComponent("model.json"))) as! [String: Any]
        XCTAssertEqual(card["fold"] as? Int, 0)
        XCTAssertEqual(card["seed"] as? Int, 962)
        XCTAssertEqual(card["datasetVersion"] as? String, "version")

        let evaluated = try runHrtem(["evaluate", modelFolder.path, version.path, "--all", "--json"])
        XCTAssertEqual(evaluated.status, 0, evaluated.standardError)
        let metrics = try JSONSerialization.jsonObject(with: Data(evaluated.standardOutput.utf8)) as! [String: Any]
        XCTAssertEqual(metrics["patches"] as? Int, 20 * 8)
        XCTAssertNotNil(metrics["hardDice"] as? Double)
        // In words, the particle scores too: every true particle is detected or missed.
        let described = try runHrtem(["evaluate", modelFolder.path, version.path, "--all"])
        XCTAssertEqual(described.status, 0, described.standardError)
        let particleLine = try XCTUnwrap(described.standardOutput.split(separator: "\n").first { $0.hasPrefix("particles (IoU >= 0.5") },
                                         described.standardOutput)
        XCTAssertTrue(particleLine.contains("particle F1 "), String(particleLine))
        let counts = particleLine.split(separator: " ").compactMap { Int($0) }
        XCTAssertEqual(counts.count, 3, String(particleLine))
        XCTAssertEqual(counts[0] + counts[1], 20, "each of the 20 patches holds one disc: \(particleLine)")

        // Segment a whole raw frame (the project's synthetic DM3 fixture) with the model.
        let fixtures = packageRoot.appendingPathComponent("Fixtures/synthetic")
        if let session = try FileManager.default.contentsOfDirectory(atPath: fixtures.path).sorted().first,
           let frameName = try FileManager.default.contentsOfDirectory(atPath: fixtures.appendingPathComponent(session).path)
               .sorted().first(where: { $0.hasSuffix(".dm3") }) {
            let frame = fixtures.appendingPathComponent(session).appendingPathComponent(frameName)
            let mask = folder.appendingPathComponent("mask.png"), overlay = folder.appendingPathComponent("overlay.png")
            let segmented = try runHrtem(["segment", modelFolder.path, frame.path, "--out", mask.path,
                                          "--overlay", overlay.path, "--tile", "64"])
            XCTAssertEqual(segmented.status, 0, segmented.standardError)
            XCTAssertTrue(segmented.standardOutput.contains("particle pixels"), segmented.standardOutput)
            XCTAssertTrue(FileManager.default.fileExists(atPath: mask.path))
            XCTAssertTrue(FileManager.default.fileExists(atPath: overlay.path))
        }

        let bad = try runHrtem(["train", version.path, "--fold", "0", "--noise", "0.2", "--noise-max", "0.3"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.standardError.contains("not both"), bad.standardError)
        let badWidths = try runHrtem(["train", version.path, "--fold", "0", "--widths", "4,x"])
        XCTAssertNotEqual(badWidths.status, 0)
        XCTAssertTrue(badWidths.standardError.contains("--widths"), badWidths.standardError)
        let missing = try runHrtem(["train", folder.appendingPathComponent("nowhere").path, "--fold", "0",
                                    "--data", folder.appendingPathComponent("data").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.standardError.contains("nowhere") && missing.standardError.contains("hrtem dataset build"),
                      missing.standardError)
    }
}
