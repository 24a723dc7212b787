import Catalog
import Experiments
import Foundation
import Micrograph
import Preprocessing
import Segmentation
import TestSupport
import XCTest

/// Particle F1 and diameter bias in matrix cells: what the trainer executor records equals a
/// direct computation with the fold model, and the report shows it beside hard Dice.
final class ParticleScoresTests: XCTestCase {
    var folder: URL!
    override func setUpWithError() throws { folder = try temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    /// 8 patches of two discs each on noise, 2 folds.
    func makeVersion(_ name: String, seed: UInt64) throws -> DatasetVersionRef {
        let url = folder.appendingPathComponent("datasets/\(name)/\(name)-v1")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let count = 8, side = 16
        var random = SplitMix64(seed: seed)
        var images = [Float](), labels = [UInt8]()
        for _ in 0..<count {
            let first = (3 + Int(random.nextUnitDouble() * 3), 3 + Int(random.nextUnitDouble() * 10))
            let second = (11 + Int(random.nextUnitDouble() * 2), 3 + Int(random.nextUnitDouble() * 10))
            for y in 0..<side {
                for x in 0..<side {
                    let inside = [first, second].contains { (y - $0.0) * (y - $0.0) + (x - $0.1) * (x - $0.1) <= 5 }
                    labels.append(inside ? 1 : 0)
                    images.append((inside ? 2 : 0) + Float(random.nextGaussian()) * 0.6)
                }
            }
        }
        let folds = [Fold(fold: 0, seed: 100, train: [4, 5, 6], validation: [7], test: [0, 1, 2, 3]),
                     Fold(fold: 1, seed: 101, train: [0, 1, 2], validation: [3], test: [4, 5, 6, 7])]
        try writeVersionFolder(at: url, name: name, versionId: "\(name)-v1",
                               images: NPYArray(shape: [count, side, side], float32: images),
                               labels: NPYArray(shape: [count, side, side], uint8: labels),
                               folds: FoldPlan(k: 2, rule: .study, folds: folds))
        return try DatasetResolution.resolve(url.path, in: DataFolder(url: folder.appendingPathComponent("data")))
    }

    func testRecordedParticleScoresMatchADirectComputation() throws {
        let dataset = try makeVersion("discs", seed: 3)
        let variant = TrainingVariant(label: "default", settings: TrainingSettings(epochs: 2, batchSize: 4, threads: 1), baseSeed: 9)
        let plan = try MatrixPlan(name: "particles", trainOn: [dataset], testOn: [dataset], folds: 2,
                                  variants: [variant], executor: .trainer)
        let store = JSONResultStore(folder: folder.appendingPathComponent("results"))
        try MatrixRunner(plan: plan, executor: TrainerExecutor(dataFolder: DataFolder(url: folder.appendingPathComponent("data"))),
                         store: store, jobs: 1).run()
        let results = try MatrixResults(plan: plan, store: store)
        let cell = try XCTUnwrap(results.cell(train: dataset.id, test: dataset.id))
        XCTAssertEqual(cell.folds.count, 2)
        let patches = try PatchDataset.load(from: URL(fileURLWithPath: dataset.folder))
        for fold in cell.folds {
            let recorded = try XCTUnwrap(fold.particles)
            XCTAssertEqual(recorded.unit, "px", "no catalog, so no pixel scale: sizes in px")
            let model = try TrainedModel.load(from: URL(fileURLWithPath: try XCTUnwrap(results.models[fold.modelID]).folder))
            var detected = 0, missed = 0, spurious = 0, predicted = [Double](), truth = [Double]()
            for row in try patches.fold(fold.fold).test {
                let input = Tensor([1, 1, 16, 16])
                for i in 0..<256 { input.data[i] = patches.images[row * 256 + i] }
                let mask = Raster(width: 16, height: 16, pixels: hardPrediction(model.network.forward(input, training: false)))
                let label = Raster(width: 16, height: 16, pixels: Array(patches.labels[row * 256..<(row + 1) * 256]))
                let found = findParticles(in: mask), expected = findParticles(in: label)
                let comparison = compareParticles(predicted: found, truth: expected, scale: .pixels)
                detected += comparison.detected; missed += comparison.missed; spurious += comparison.spurious
                predicted += found.particles.map(\.equivalentDiameter)
                truth += expected.particles.map(\.equivalentDiameter)
            }
            XCTAssertEqual(truth.count, 8, "two discs in each of the 4 test patches")
            XCTAssertEqual([recorded.detected, recorded.missed, recorded.spurious], [detected, missed, spurious])
            XCTAssertEqual(recorded.f1, Double(2 * detected) / Double(max(1, 2 * detected + missed + spurious)), accuracy: 1e-12)
            if predicted.isEmpty {
                XCTAssertNil(recorded.meanDiameterDifference)
            } else {
                let bias = predicted.reduce(0, +) / Double(predicted.count) - truth.reduce(0, +) / Double(truth.count)
                XCTAssertEqual(try XCTUnwrap(recorded.meanDiameterDifference), bias, accuracy: 1e-9)
            }
        }
        XCTAssertEqual(cell.particleF1?.values, cell.folds.map { $0.particles!.f1 })
        let html = MatrixReport.html(results)
        XCTAssertTrue(html.contains("<h2>Particles</h2>"))
        XCTAssertTrue(html.contains(String(format: "%.4f ± %.4f", cell.particleF1!.mean, cell.particleF1!.std)), "particle F1 shown")
        XCTAssertTrue(html.contains(String(format: "%.4f ± %.4f", cell.hardDice!.mean, cell.hardDice!.std)), "beside hard Dice")
    }

    func testRecordsWithoutParticleScoresStillRead() throws {
        let json = #"{"metrics":{"hardDice":0.9,"softDice":0.8,"falsePositiveRate":0.01,"falseNegativeRate":0.02,"loss":0.1,"patches":8}}"#
        let evaluation = try JSONDecoder().decode(Evaluation.self, from: Data(json.utf8))
        XCTAssertNil(evaluation.particles)
        XCTAssertEqual(evaluation.metrics.hardDice, 0.9)
    }
}
