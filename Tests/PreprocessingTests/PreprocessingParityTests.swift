import Foundation
import Micrograph
@testable import Preprocessing
import TestSupport
import XCTest

/// Parity with the independent NumPy / scikit-image implementation in
/// `Benchmarks/peers/preprocessing_reference.py`, run on a seeded synthetic frame.
final class PreprocessingParityTests: XCTestCase {
    struct ReferenceResult: Decodable {
        var xray_counts: [Int]
        var coefficients: [Double]
        var kept: [[Int]]
        var shuffle: [Int]
        var folds_430: [Fold]
        var folds_355: [Fold]
        var folds_kept: [Fold]
    }

    func testMatchesTheNumpyReference() throws {
        guard pythonCanImport("numpy"), pythonCanImport("skimage") else {
            throw XCTSkip("\(peerPython) cannot import numpy and scikit-image: NumPy parity skipped (run `make peers` or set HRTEM_PYTHON)")
        }
        let folder = try makeTemporaryFolder("hrtem-prep-parity")
        defer { try? FileManager.default.removeItem(at: folder) }
        let size = 512, patch = 128
        let frame = SyntheticFrame(size: size, seed: 2024, hitCount: 60, particles: 14)
        try writeNPY(NPYArray(shape: [size, size], float32: frame.image.pixels), to: folder.appendingPathComponent("frame.npy"))
        try writeNPY(NPYArray(shape: [size, size], uint8: frame.label.pixels), to: folder.appendingPathComponent("label.npy"))
        let script = packageRoot.appendingPathComponent("Benchmarks/peers/preprocessing_reference.py")
        let run = try runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                 [peerPython, script.path, "parity", folder.appendingPathComponent("frame.npy").path,
                                  folder.appendingPathComponent("label.npy").path, folder.path,
                                  "--patch", "\(patch)", "--shuffle-count", "1000"])
        XCTAssertEqual(run.status, 0, run.standardError)
        let reference = try JSONDecoder().decode(ReferenceResult.self,
                                                 from: Data(contentsOf: folder.appendingPathComponent("result.json")))
        func doubles(_ name: String) throws -> [Double] {
            let array = try readNPY(from: folder.appendingPathComponent(name))
            XCTAssertEqual(array.pixelType, .float64)
            return array.bytes.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
        }

        // x-ray removal: exact
        var cleaned = frame.image
        let report = removeXRays(&cleaned)
        XCTAssertEqual(report.outliersPerPass, reference.xray_counts)
        let referenceCleaned = try XCTUnwrap(readNPY(from: folder.appendingPathComponent("xray.npy")).float32Values)
        XCTAssertEqual(cleaned.pixels.count, referenceCleaned.count)
        let mismatches = zip(cleaned.pixels, referenceCleaned).filter { $0.0.bitPattern != $0.1.bitPattern }.count
        XCTAssertEqual(mismatches, 0, "x-ray removal differs from NumPy in \(mismatches) pixels")

        // the downscale equals scikit-image's rescale(0.25)
        let small = downscaleAntiAliased(cleaned)
        let referenceSmall = try doubles("downscaled.npy")
        XCTAssertLessThan(maxRelativeDifference(small.pixels, referenceSmall), 1e-9)

        // flat-field background: 1e-5 relative
        let model = fitFlatField(cleaned)
        let background = model.background()
        XCTAssertLessThan(maxRelativeDifference(background.pixels, try doubles("background.npy")), 1e-5)
        for (a, b) in zip(model.coefficients, reference.coefficients) { XCTAssertEqual(a, b, accuracy: 1e-6 * abs(b)) }

        // rescalings: 1e-6 (the Double path), and the fused Float path within float32 rounding
        let corrected = flatFieldCorrected(cleaned, model)
        for method in Rescaling.allCases {
            let expected = try doubles("\(method.rawValue).npy")
            let ours = rescaled(corrected, method).pixels
            XCTAssertLessThan(zip(ours, expected).map { abs($0 - $1) }.max()!, 1e-6, "\(method)")
            let fused = preprocessFrame(frame.image, FramePreprocessing(rescaling: method)).image.pixels
            let worst = zip(fused, expected).map { abs(Double($0) - $1) / max(1, abs($1)) }.max()!
            XCTAssertLessThan(worst, 1e-6, "fused \(method)")
        }

        // same kept patches, same shuffle, same folds
        let kept = keptPatches(label: frame.label, patch: patch, stride: patch, minParticlePixels: 400)
        XCTAssertEqual(kept.map { [$0.origin.row, $0.origin.column, $0.particlePixels] }, reference.kept)
        XCTAssertGreaterThan(kept.count, 5)
        XCTAssertLessThan(kept.count, 16)
        XCTAssertEqual(studyShuffle(count: 1000, seed: 34522), reference.shuffle)
        XCTAssertEqual(studyFolds(count: 430).folds, reference.folds_430)
        XCTAssertEqual(studyFolds(count: 355).folds, reference.folds_355)
        XCTAssertEqual(studyFolds(count: kept.count).folds, reference.folds_kept)
    }

    func testShuffleMatchesNumpyForManySizesAndSeeds() throws {
        guard pythonCanImport("numpy") else {
            throw XCTSkip("\(peerPython) cannot import numpy: legacy-shuffle parity skipped")
        }
        let code = """
        import json, numpy as np
        out = []
        for n, s in [(1, 0), (2, 1), (430, 34522), (355, 962), (2016, 9201), (70000, 4294967295), (5, 7427)]:
            np.random.seed(s); i = np.arange(n); np.random.shuffle(i); out.append(i.tolist())
        np.random.seed(6274); print(json.dumps([float(x).hex() for x in np.random.random_sample(5)]))
        print(json.dumps(out))
        """
        let run = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [peerPython, "-c", code])
        XCTAssertEqual(run.status, 0, run.standardError)
        let lines = run.standardOutput.split(separator: "\n").map { Data($0.utf8) }
        let expected = try JSONSerialization.jsonObject(with: lines[1]) as! [[NSNumber]]
        let hexDoubles = try JSONDecoder().decode([String].self, from: lines[0])
        let cases: [(Int, UInt32)] = [(1, 0), (2, 1), (430, 34522), (355, 962), (2016, 9201), (70000, 4_294_967_295), (5, 7427)]
        for (k, (n, seed)) in cases.enumerated() {
            XCTAssertEqual(studyShuffle(count: n, seed: seed), expected[k].map(\.intValue), "n \(n) seed \(seed)")
        }
        var generator = LegacyNumpyRandom(seed: 6274)
        XCTAssertEqual((0..<5).map { _ in generator.nextDouble() }, hexDoubles.map { Double($0)! })
    }
}

func maxRelativeDifference(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) / max(abs($1), 1e-300) }.max() ?? 0
}
