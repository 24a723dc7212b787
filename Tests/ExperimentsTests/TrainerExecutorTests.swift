import Catalog
import Experiments
import Foundation
import Micrograph
import Preprocessing
import Segmentation
import TestSupport
import XCTest

/// The real executor on two tiny dataset versions (16 x 16 patches, 3 folds, 2 epochs): the
/// plumbing between the runner and the trainer, not the learning (Segmentation tests that).
final class TrainerExecutorTests: XCTestCase {
    var folder: URL!
    override func setUpWithError() throws { folder = try temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    /// 12 patches of discs on noise; `contrast` scales the discs against the noise.
    func makeVersion(_ name: String, contrast: Float, seed: UInt64) throws -> DatasetVersionRef {
        let url = folder.appendingPathComponent("datasets/\(name)/\(name)-v1")
        try writeThreeFoldDiscVersionFolder(at: url, name: name, versionId: "\(name)-v1", contrast: contrast, seed: seed)
        return try DatasetResolution.resolve(url.path, in: DataFolder(url: folder.appendingPathComponent("data")))
    }

    func testTrainerExecutorRunsAMatrixAndReusesFinishedModels() throws {
        let easy = try makeVersion("easy", contrast: 3, seed: 1)
        let hard = try makeVersion("hard", contrast: 1, seed: 2)
        XCTAssertEqual(easy.foldCount, 3)
        let variant = TrainingVariant(label: "default", settings: TrainingSettings(epochs: 2, batchSize: 8, threads: 1), baseSeed: 5)
        let plan = try MatrixPlan(name: "tiny", trainOn: [easy, hard], testOn: [easy, hard], folds: 3,
                                  variants: [variant], executor: .trainer)
        let data = DataFolder(url: folder.appendingPathComponent("data"))
        let lines = LineLog()
        let executor = TrainerExecutor(dataFolder: data, progress: { unit, progress in
            if progress.epochFinished { lines.append("\(unit.id) \(progress.epoch)") }
        })
        let store = JSONResultStore(folder: folder.appendingPathComponent("results"))
        try MatrixRunner(plan: plan, executor: executor, store: store, jobs: 2).run()
        let results = try MatrixResults(plan: plan, store: store)
        XCTAssertTrue(results.isComplete)
        XCTAssertEqual(lines.lines.count, 6 * 2, "one line per epoch of each fold model")
        for cell in results.cells {
            for fold in cell.folds {
                let metrics = fold.metrics
                for value in [metrics.hardDice, metrics.softDice, metrics.falsePositiveRate, metrics.falseNegativeRate] {
                    XCTAssertTrue((0...1).contains(value), "\(value) in \(cell.trainDatasetID)->\(cell.testDatasetID)")
                }
                XCTAssertEqual(metrics.patches, cell.isDiagonal ? 4 * 8 : 12 * 8, "diagonal: the test fold; else all, x8")
                XCTAssertEqual(fold.sampleOverlays != nil, fold.fold == 0)
                if let overlay = fold.sampleOverlays?.first {
                    let bytes = try Data(contentsOf: URL(fileURLWithPath: overlay))
                    XCTAssertEqual(Array(bytes.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
                }
            }
        }
        for unit in plan.trainUnits {
            let model = try XCTUnwrap(try store.model(for: unit))
            XCTAssertEqual(model.folder, data.modelsFolder.appendingPathComponent(unit.id).path)
            XCTAssertTrue(FileManager.default.fileExists(atPath: model.folder + "/model.safetensors"))
            XCTAssertEqual(model.card, try ModelCard.read(from: URL(fileURLWithPath: model.folder)), "the recorded card is the folder's")
            XCTAssertEqual(model.card.seed, unit.settings.seed, "the run's base seed resolved per fold")
        }

        // A new plan that needs the same models (a smaller matrix, own results folder) reuses them.
        let again = try MatrixPlan(name: "subset", trainOn: [easy], testOn: [easy, hard], folds: 3,
                                   variants: [variant], executor: .trainer)
        let second = JSONResultStore(folder: folder.appendingPathComponent("results-2"))
        let retrained = LineLog()
        try MatrixRunner(plan: again, executor: TrainerExecutor(dataFolder: data, progress: { unit, _ in retrained.append(unit.id) }),
                         store: second, jobs: 1).run()
        XCTAssertEqual(retrained.lines, [], "reused, not retrained")
        for unit in again.trainUnits { XCTAssertEqual(try second.model(for: unit), try store.model(for: unit)) }
        let subset = try MatrixResults(plan: again, store: second)
        for cell in subset.cells {
            XCTAssertEqual(cell.hardDice, results.cell(train: cell.trainDatasetID, test: cell.testDatasetID)?.hardDice,
                           "evaluation is deterministic")
        }
        let html = MatrixReport.html(results)
        XCTAssertTrue(html.contains("data:image/png;base64,"))
    }
}

final class LineLog: Sendable {
    private let storage = Locked([String]())
    var lines: [String] { storage.value }
    func append(_ line: String) { storage.withLock { $0.append(line) } }
}
