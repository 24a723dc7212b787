import Foundation
import Micrograph
import Preprocessing
@testable import Segmentation
import TestSupport
import XCTest

/// Writes a small synthetic dataset version: bright textured discs on noisy substrate, with
/// exact 0/1 labels, `count` patches of `side` x `side`, one fold (70/10/20 by contiguous blocks).
func makeDiscDataset(in folder: URL, count: Int, side: Int, seed: UInt64) throws {
    var images = [Float](), labels = [UInt8]()
    for patch in 0..<count {
        var random = SplitMix64(seed: seed).derived(UInt64(patch))
        var values = [Float](repeating: 0, count: side * side)
        var mask = [UInt8](repeating: 0, count: side * side)
        let discs = 1 + Int(random.next() % 3)
        var centres: [(Double, Double, Double)] = []
        for _ in 0..<discs {
            centres.append((random.nextUnitDouble() * Double(side), random.nextUnitDouble() * Double(side),
                            Double(side) * (0.08 + 0.1 * random.nextUnitDouble())))
        }
        let period = 3 + random.nextUnitDouble() * 2
        for i in 0..<side {
            for j in 0..<side {
                let inside = centres.contains { (Double(i) - $0.0) * (Double(i) - $0.0) + (Double(j) - $0.1) * (Double(j) - $0.1) < $0.2 * $0.2 }
                let lattice = inside ? 0.8 + 0.5 * sin(2 * .pi * Double(i + j) / period) : 0
                values[i * side + j] = Float(lattice + 0.35 * random.nextGaussian())
                mask[i * side + j] = inside ? 1 : 0
            }
        }
        let mean = values.reduce(0, +) / Float(values.count)
        let deviation = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(values.count)).squareRoot()
        images += values.map { ($0 - mean) / deviation }
        labels += mask
    }
    let test = Array(0..<(count / 5)), validation = Array((count / 5)..<(count / 5 + max(1, count / 10)))
    let train = Array((validation.last! + 1)..<count)
    try writeVersionFolder(at: folder, name: "discs", versionId: "discs-\(seed)",
                           images: NPYArray(shape: [count, side, side], float32: images),
                           labels: NPYArray(shape: [count, side, side], uint8: labels),
                           folds: FoldPlan(k: 1, rule: .study, folds: [Fold(fold: 0, seed: 962, train: train,
                                                                            validation: validation, test: test)]))
}

final class TrainingTests: XCTestCase {
    func testDihedralTransformsAreTheEightSymmetriesInNumPyOrder() {
        let source: [Int] = [1, 2, 3, 4] // [[1, 2], [3, 4]]
        var results: [[Int]] = []
        for transform in 0..<8 {
            var out = [Int](repeating: 0, count: 4)
            source.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { dihedralCopy(s.baseAddress!, into: $0.baseAddress!, side: 2, transform: transform) } }
            results.append(out)
        }
        // np.rot90([[1,2],[3,4]]) = [[2,4],[1,3]]; np.fliplr = [[2,1],[4,3]]; rot90(fliplr) = [[1,3],[2,4]].
        XCTAssertEqual(results[0], [1, 2, 3, 4])
        XCTAssertEqual(results[1], [2, 4, 1, 3])
        XCTAssertEqual(results[2], [4, 3, 2, 1])
        XCTAssertEqual(results[4], [2, 1, 4, 3])
        XCTAssertEqual(results[5], [1, 3, 2, 4])
        XCTAssertEqual(Set(results.map { $0.description }).count, 8)
    }

    func testRotationFillsWithBackgroundMedianAndTruncatesLabels() {
        let side = 16
        var image = [Float](repeating: 2, count: side * side), label = [UInt8](repeating: 0, count: side * side)
        for i in 4..<12 { for j in 4..<12 { label[i * side + j] = 1; image[i * side + j] = 9 } }
        var random = SplitMix64(seed: 3)
        var rotated = false
        for _ in 0..<20 where !rotated {
            var imageCopy = image, labelCopy = label
            imageCopy.withUnsafeMutableBufferPointer { image in
                labelCopy.withUnsafeMutableBufferPointer { label in
                    augmentSample(image: image.baseAddress!, label: label.baseAddress!, side: side, rotate: true,
                                  noise: .none, random: &random)
                }
            }
            if imageCopy != image && imageCopy[0] == 2 {
                rotated = true
                XCTAssertLessThanOrEqual(labelCopy.reduce(0) { $0 + Int($1) }, 64, "truncation never grows a label")
                XCTAssertTrue(imageCopy.allSatisfy { $0 >= 2 - 1e-4 && $0 <= 9 + 1e-4 }, "bilinear stays within the data and fill")
            }
        }
        XCTAssertTrue(rotated)
    }

    /// A small network trained briefly on synthetic discs segments held-out patches.
    func testShortTrainingLearnsToSegmentDiscs() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try makeDiscDataset(in: folder, count: 60, side: 32, seed: 11)
        let settings = TrainingSettings(architecture: UNetArchitecture(widths: [8, 16], bottleneckWidth: 16),
                                        epochs: 12, batchSize: 16, learningRate: 1e-2, threads: 2)
        var lines = 0
        let model = try train(datasetFolder: folder, fold: 0, settings: settings, output: folder.appendingPathComponent("model")) { progress in
            if progress.epochFinished { lines += 1 }
        }
        XCTAssertEqual(lines, 12)
        let dataset = try PatchDataset.load(from: folder)
        let test = evaluate(network: model.network, dataset: dataset, rows: try dataset.fold(0).test)
        XCTAssertGreaterThanOrEqual(test.hardDice, 0.9, "held-out hard Dice \(test.hardDice)")
        XCTAssertEqual(test.patches, 12 * 8)
        // The saved model reloads and scores the same.
        let reloaded = try TrainedModel.load(from: folder.appendingPathComponent("model"))
        XCTAssertEqual(reloaded.card, model.card)
        let again = evaluate(network: reloaded.network, dataset: dataset, rows: Array(0..<12))
        XCTAssertEqual(again.hardDice, test.hardDice, accuracy: 1e-9)
        let csv = try String(contentsOf: folder.appendingPathComponent("model/training.csv"), encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 13)
    }

    /// Interrupting after some epochs and running again continues to the same bytes.
    func testResumedTrainingGivesTheSameModelBytes() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try makeDiscDataset(in: folder, count: 20, side: 16, seed: 5)
        let config = TrainingSettings(architecture: UNetArchitecture(widths: [4], bottleneckWidth: 8), epochs: 3,
                                      batchSize: 8, noise: .uniform(0.5), threads: 2)
        let whole = folder.appendingPathComponent("whole"), resumed = folder.appendingPathComponent("resumed")
        _ = try train(datasetFolder: folder, fold: 0, settings: config, output: whole)
        var shorter = config
        shorter.epochs = 2
        _ = try train(datasetFolder: folder, fold: 0, settings: shorter, output: resumed)
        _ = try train(datasetFolder: folder, fold: 0, settings: config, output: resumed)
        XCTAssertEqual(try Data(contentsOf: whole.appendingPathComponent("model.safetensors")),
                       try Data(contentsOf: resumed.appendingPathComponent("model.safetensors")))
        XCTAssertEqual(try Data(contentsOf: whole.appendingPathComponent("training.csv")).count,
                       try Data(contentsOf: resumed.appendingPathComponent("training.csv")).count)
        var other = config
        other.learningRate = 0.5
        XCTAssertThrowsError(try train(datasetFolder: folder, fold: 0, settings: other, output: resumed)) {
            XCTAssertTrue("\($0)".contains("another dataset, fold or configuration"), "\($0)")
        }
        XCTAssertThrowsError(try train(datasetFolder: folder, fold: 3, settings: config, output: folder.appendingPathComponent("x"))) {
            XCTAssertTrue("\($0)".contains("no fold 3"), "\($0)")
        }
    }
}
