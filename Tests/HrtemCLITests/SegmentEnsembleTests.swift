import Foundation
import Micrograph
import Preprocessing
import TestSupport
import XCTest

/// `hrtem segment FRAMES --models/--trained-on`: tiny fold models trained here, applied to a
/// fixture frame as an ensemble.
final class SegmentEnsembleTests: XCTestCase {
    private func makeVersion(in folder: URL) throws {
        try writeDiscVersionFolder(at: folder, name: "tiny", versionId: "tinyversion", count: 16, seed: 5,
                                   folds: FoldPlan(k: 2, rule: .study, folds: [
                                       Fold(fold: 0, seed: 962, train: Array(6..<16), validation: [4, 5], test: [0, 1, 2, 3]),
                                       Fold(fold: 1, seed: 963, train: Array(0..<10), validation: [10, 11], test: [12, 13, 14, 15]),
                                   ]))
    }

    private func train(_ version: URL, fold: Int, widths: String, to out: URL, data: URL) throws {
        let trained = try runHrtem(["train", version.path, "--fold", "\(fold)", "--epochs", "1", "--batch", "8",
                                    "--widths", widths, "--bottleneck", "8", "--threads", "1",
                                    "--out", out.path, "--data", data.path])
        XCTAssertEqual(trained.status, 0, trained.standardError)
    }

    private func floats(_ url: URL) throws -> (shape: [Int], values: [Float]) {
        let array = try readNPY(from: url)
        return (array.shape, try XCTUnwrap(array.float32Values))
    }

    func testEnsembleOutputsAndTheirConsistency() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let version = folder.appendingPathComponent("version"), data = folder.appendingPathComponent("data")
        try makeVersion(in: version)
        let models = data.appendingPathComponent("models")
        try train(version, fold: 0, widths: "4", to: models.appendingPathComponent("f0"), data: data)
        try train(version, fold: 1, widths: "4", to: models.appendingPathComponent("f1"), data: data)
        let frame = fixtures.appendingPathComponent("2024_01_08 2p2nm Au nanoparticles on UTC synthetic/20240108_Au_UTC_330kx_2770e_0p3192s_01.dm3")

        let out = folder.appendingPathComponent("out")
        let reportFolder = folder.appendingPathComponent("report")
        let run = try runHrtem(["segment", frame.path, "--trained-on", version.path, "--tile", "64", "--out", out.path,
                                "--report", reportFolder.path, "--data", data.path])
        XCTAssertEqual(run.status, 0, run.standardError)
        XCTAssertTrue(run.standardOutput.contains("2 models"), run.standardOutput)
        let stem = "20240108_Au_UTC_330kx_2770e_0p3192s_01"
        let (shape, probability) = try floats(out.appendingPathComponent("\(stem)_probability.npy"))
        XCTAssertEqual(shape, [256, 256])
        let deviation = try floats(out.appendingPathComponent("\(stem)_std.npy")).values
        let entropy = try floats(out.appendingPathComponent("\(stem)_entropy.npy")).values
        let mask = try readLabelMask(at: out.appendingPathComponent("\(stem)_mask.png"))
        for i in stride(from: 0, to: probability.count, by: 97) {
            XCTAssertTrue((0...1).contains(probability[i]) && (0...0.5).contains(deviation[i]) && (0...1).contains(entropy[i]))
            XCTAssertEqual(mask.pixels[i], probability[i] > 0.5 ? 1 : 0)
            let p = Double(min(max(probability[i], 1e-7), 1 - 1e-7))
            XCTAssertEqual(Double(entropy[i]), -(p * log2(p) + (1 - p) * log2(1 - p)), accuracy: 1e-4)
        }
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("summary.json"))) as! [[String: Any]]
        XCTAssertEqual(summary.count, 1)
        XCTAssertEqual(summary[0]["models"] as? Int, 2)
        let meanDeviation = deviation.reduce(0.0) { $0 + Double($1) } / Double(deviation.count)
        XCTAssertEqual(summary[0]["uncertainty"] as! Double, meanDeviation, accuracy: 1e-6)
        XCTAssertGreaterThan(meanDeviation, 0, "two differently trained models disagree somewhere")
        XCTAssertEqual(summary[0]["unit"] as? String, "nm", "the DM3 fixture carries its calibration")
        for suffix in ["overlay.png", "uncertainty.png", "particles.csv", "histogram.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("\(stem)_\(suffix)").path), suffix)
        }
        let csvRows = try String(contentsOf: out.appendingPathComponent("\(stem)_particles.csv"), encoding: .utf8)
            .split(separator: "\n").count - 1
        XCTAssertEqual(csvRows, summary[0]["particles"] as? Int)

        // The deployment report: one page, pictures inline, nothing fetched.
        let html = try String(contentsOf: reportFolder.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertEqual(html.components(separatedBy: "data:image/png;base64,").count - 1, 2, "overlay and uncertainty map")
        XCTAssertTrue(html.contains("equivalent diameter (nm)"), "the histogram, inline")
        XCTAssertTrue(html.contains("<th>equivalent diameter nm</th>"), "the particle table")
        XCTAssertTrue(html.contains("no matrix results"), "no catalog: the recommendation says what it lacks")
        XCTAssertTrue(html.contains(String(format: "uncertainty %.4f", meanDeviation)))
        XCTAssertFalse(html.contains("src=\"http") || html.contains("href=\"http"), "self-contained")

        // One model as an ensemble: no disagreement, and the mask of the one-model form.
        let single = folder.appendingPathComponent("single")
        let one = try runHrtem(["segment", frame.path, "--models", models.appendingPathComponent("f0").path, "--tile", "64",
                                "--out", single.path, "--data", data.path])
        XCTAssertEqual(one.status, 0, one.standardError)
        XCTAssertTrue(try floats(single.appendingPathComponent("\(stem)_std.npy")).values.allSatisfy { $0 == 0 })
        let legacyMask = folder.appendingPathComponent("legacy.png")
        let legacy = try runHrtem(["segment", models.appendingPathComponent("f0").path, frame.path, "--tile", "64",
                                   "--out", legacyMask.path, "--data", data.path])
        XCTAssertEqual(legacy.status, 0, legacy.standardError)
        XCTAssertEqual(try readLabelMask(at: legacyMask), try readLabelMask(at: single.appendingPathComponent("\(stem)_mask.png")))

        // Models of different architectures are refused, naming both.
        try train(version, fold: 0, widths: "4,8", to: folder.appendingPathComponent("deeper"), data: data)
        let mixed = try runHrtem(["segment", frame.path, "--models",
                                  models.appendingPathComponent("f0").path + "," + folder.appendingPathComponent("deeper").path,
                                  "--tile", "64", "--out", folder.appendingPathComponent("mixed").path, "--data", data.path])
        XCTAssertNotEqual(mixed.status, 0)
        XCTAssertTrue(mixed.standardError.contains("different architectures") && mixed.standardError.contains("deeper"),
                      mixed.standardError)

        // A frame with no calibration (and no catalog): sizes in px, said so; refused under --nm.
        let bare = folder.appendingPathComponent("bare.dm4")
        var random = SplitMix64(seed: 3)
        try writeDM(Raster(width: 64, height: 64, pixels: (0..<4096).map { _ in Float(1000 + 30 * random.nextGaussian()) }), to: bare)
        let inPixels = try runHrtem(["segment", bare.path, "--models", models.appendingPathComponent("f0").path, "--tile", "64",
                                     "--out", folder.appendingPathComponent("bare-out").path, "--data", data.path])
        XCTAssertEqual(inPixels.status, 0, inPixels.standardError)
        let bareSummary = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("bare-out/summary.json"))) as! [[String: Any]]
        XCTAssertEqual(bareSummary[0]["unit"] as? String, "px")
        XCTAssertFalse(try String(contentsOf: folder.appendingPathComponent("bare-out/bare_particles.csv"), encoding: .utf8).contains("nm"))
        let refused = try runHrtem(["segment", bare.path, "--models", models.appendingPathComponent("f0").path, "--tile", "64", "--nm",
                                    "--out", folder.appendingPathComponent("bare-nm").path, "--data", data.path])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.standardError.contains("no pixel size known"), refused.standardError)

        let nothing = try runHrtem(["segment", frame.path, "--trained-on", folder.appendingPathComponent("nowhere").path,
                                    "--out", out.path, "--data", data.path])
        XCTAssertNotEqual(nothing.status, 0)
        XCTAssertTrue(nothing.standardError.contains("nowhere"), nothing.standardError)
    }

    private var fixtures: URL { packageRoot.appendingPathComponent("Fixtures/synthetic") }
}
