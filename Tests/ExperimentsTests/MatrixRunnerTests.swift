import Catalog
import Experiments
import Foundation
import Micrograph
import Segmentation
import XCTest

final class MatrixRunnerTests: XCTestCase {
    var folders: [URL] = []
    override func tearDown() { for folder in folders { try? FileManager.default.removeItem(at: folder) } }

    func store() throws -> JSONResultStore {
        let folder = try temporaryFolder()
        folders.append(folder)
        return JSONResultStore(folder: folder)
    }

    func testSerialRunDoesEveryUnitOnceAndFillsEveryCell() throws {
        let plan = try samplePlan()
        let executor = CountingExecutor()
        let store = try store()
        let summary = try MatrixRunner(plan: plan, executor: executor, store: store, jobs: 1).run()
        XCTAssertEqual(summary.ran, plan.unitCount)
        XCTAssertEqual(summary.trainedModels, 15)
        XCTAssertEqual(summary.evaluations, 45)
        XCTAssertEqual(Set(executor.trainCalls.values), [1])
        XCTAssertEqual(Set(executor.evaluateCalls.values), [1])
        XCTAssertEqual(executor.evaluateCalls.count, 45)
        let results = try MatrixResults(plan: plan, store: store)
        XCTAssertTrue(results.isComplete)
        XCTAssertEqual(results.missingUnits, 0)
        XCTAssertEqual(results.cells.count, 9)
        for cell in results.cells {
            XCTAssertEqual(cell.folds.map(\.fold), [0, 1, 2, 3, 4])
            let values = cell.folds.map(\.metrics.hardDice)
            let mean = values.reduce(0, +) / 5
            XCTAssertEqual(cell.hardDice?.mean ?? -1, mean, accuracy: 1e-12)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 5
            XCTAssertEqual(cell.hardDice?.std ?? -1, variance.squareRoot(), accuracy: 1e-12)
        }
    }

    func testParallelRunGivesTheSameResultsAsSerial() throws {
        let plan = try samplePlan()
        let serial = try store(), parallel = try store()
        try MatrixRunner(plan: plan, executor: SimulatedExecutor(), store: serial, jobs: 1).run()
        let executor = CountingExecutor()
        let events = EventLog()
        try MatrixRunner(plan: plan, executor: executor, store: parallel, jobs: 4, progress: { events.append($0) }).run()
        XCTAssertEqual(try MatrixResults(plan: plan, store: parallel), try MatrixResults(plan: plan, store: serial))
        XCTAssertEqual(executor.totalCalls, plan.unitCount, "no unit ran twice")
        XCTAssertEqual(events.events.count, plan.unitCount)
        XCTAssertEqual(events.events.map(\.finished).sorted(), Array(1...plan.unitCount))
    }

    func testInterruptedRunResumesWithoutRedoingFinishedUnits() throws {
        let plan = try samplePlan()
        let reference = try store()
        try MatrixRunner(plan: plan, executor: SimulatedExecutor(), store: reference, jobs: 1).run()

        let resumed = try store()
        let crashing = CountingExecutor()
        crashing.failAfter = 23     // the "machine dies" after 23 units
        XCTAssertThrowsError(try MatrixRunner(plan: plan, executor: crashing, store: resumed, jobs: 2).run()) { error in
            XCTAssertTrue(error is MatrixRunError, "\(error)")
        }
        let partial = try MatrixResults(plan: plan, store: resumed)
        XCTAssertFalse(partial.isComplete)
        let finishedTrain = Set(crashing.trainCalls.keys), finishedEvaluate = Set(crashing.evaluateCalls.keys)
        XCTAssertEqual(finishedTrain.count + finishedEvaluate.count, 23)

        let second = CountingExecutor()
        let summary = try MatrixRunner(plan: plan, executor: second, store: resumed, jobs: 3).run()
        XCTAssertEqual(summary.alreadyDone, 23)
        XCTAssertEqual(summary.ran, plan.unitCount - 23)
        XCTAssertTrue(Set(second.trainCalls.keys).isDisjoint(with: finishedTrain), "a finished model was retrained")
        XCTAssertTrue(Set(second.evaluateCalls.keys).isDisjoint(with: finishedEvaluate), "a finished evaluation was redone")
        XCTAssertEqual(try MatrixResults(plan: plan, store: resumed), try MatrixResults(plan: plan, store: reference))

        // A third run does nothing at all.
        let third = CountingExecutor()
        let idle = try MatrixRunner(plan: plan, executor: third, store: resumed, jobs: 2).run()
        XCTAssertEqual(idle.ran, 0)
        XCTAssertEqual(third.totalCalls, 0)
    }

    func testAFailedModelSkipsItsEvaluationsAndTheRestFinishes() throws {
        let plan = try samplePlan()
        let executor = CountingExecutor()
        let broken = plan.trainUnits[6]
        executor.failingTrainUnits = [broken.id]
        let store = try store()
        XCTAssertThrowsError(try MatrixRunner(plan: plan, executor: executor, store: store, jobs: 2).run()) { error in
            guard let runError = error as? MatrixRunError else { return XCTFail("\(error)") }
            XCTAssertEqual(runError.summary.failures.count, 1 + 3, "the model and its three evaluations")
            XCTAssertEqual(runError.summary.skipped, 3)
            XCTAssertEqual(runError.summary.ran, plan.unitCount - 4)
            XCTAssertTrue("\(runError)".contains("simulated failure"), "\(runError)")
        }
        executor.failingTrainUnits = []
        let summary = try MatrixRunner(plan: plan, executor: executor, store: store, jobs: 2).run()
        XCTAssertEqual(summary.ran, 4)
        XCTAssertTrue(try MatrixResults(plan: plan, store: store).isComplete)
    }

    func testRunningEveryUnitByIndexEqualsTheLocalRunner() throws {
        // What the Slurm array tasks do: one unit per process, in array order.
        let plan = try samplePlan(folds: 3)
        let local = try store(), byUnit = try store()
        try MatrixRunner(plan: plan, executor: SimulatedExecutor(), store: local, jobs: 2).run()
        let runner = MatrixRunner(plan: plan, executor: SimulatedExecutor(), store: byUnit)
        XCTAssertThrowsError(try runner.runUnit(at: plan.trainUnits.count)) { error in
            XCTAssertTrue("\(error)".contains("not recorded yet"), "an evaluation before its model: \(error)")
        }
        for index in 0..<plan.unitCount { XCTAssertEqual(try runner.runUnit(at: index), .ran) }
        XCTAssertEqual(try runner.runUnit(at: 0), .alreadyDone)
        XCTAssertEqual(try MatrixResults(plan: plan, store: byUnit), try MatrixResults(plan: plan, store: local))

        let collected = try store()
        XCTAssertEqual(try copyResults(of: plan, from: byUnit, into: collected), plan.unitCount)
        XCTAssertEqual(try copyResults(of: plan, from: byUnit, into: collected), 0, "collecting twice copies nothing")
        XCTAssertEqual(try MatrixResults(plan: plan, store: collected), try MatrixResults(plan: plan, store: local))
    }

    func testResultsGoIntoTheCatalogTablesAndReadBackExactly() throws {
        let plan = try samplePlan(folds: 3)
        let json = try store()
        let catalog = CatalogResultStore(catalog: try CatalogStore())
        try MatrixRunner(plan: plan, executor: SimulatedExecutor(), store: LayeredResultStore([json, catalog]), jobs: 3).run()
        let fromCatalog = try MatrixResults(plan: plan, store: catalog)
        XCTAssertTrue(fromCatalog.isComplete)
        XCTAssertEqual(fromCatalog, try MatrixResults(plan: plan, store: json))

        // Collecting a cluster's results into a fresh catalog gives the same.
        let other = CatalogResultStore(catalog: try CatalogStore())
        XCTAssertEqual(try copyResults(of: plan, from: json, into: other), plan.unitCount)
        XCTAssertEqual(try copyResults(of: plan, from: json, into: other), 0)
        XCTAssertEqual(try MatrixResults(plan: plan, store: other), fromCatalog)

        // A record for an unknown model is refused, not half-written.
        let orphan = plan.evaluationUnits[0]
        let empty = CatalogResultStore(catalog: try CatalogStore())
        XCTAssertThrowsError(try empty.record(Evaluation(metrics: Metrics(hardDice: 0, softDice: 0, falsePositiveRate: 0,
                                                                          falseNegativeRate: 0, loss: 1, patches: 1)), for: orphan))
        XCTAssertNil(try empty.evaluation(for: orphan))
    }

    func testACorruptRecordIsReportedWithItsFile() throws {
        let plan = try samplePlan(folds: 2)
        let store = try store()
        let file = store.folder.appendingPathComponent("models/\(plan.trainUnits[0].id).json")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("{\"id\": 3".utf8).write(to: file)
        XCTAssertThrowsError(try MatrixResults(plan: plan, store: store)) { error in
            XCTAssertTrue("\(error)".contains(file.path), "\(error)")
        }
    }
}

final class EventLog: Sendable {
    private let storage = Locked([RunEvent]())
    var events: [RunEvent] { storage.value }
    func append(_ event: RunEvent) { storage.withLock { $0.append(event) } }
}
