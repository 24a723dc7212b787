import Experiments
import Foundation
import Segmentation
import XCTest

final class MatrixPlanTests: XCTestCase {
    func testUnitsFollowTheStudysCellRule() throws {
        let plan = try samplePlan(folds: 5)
        XCTAssertEqual(plan.trainUnits.count, 3 * 5)
        XCTAssertEqual(plan.evaluationUnits.count, 3 * 5 * 3)
        XCTAssertEqual(plan.unitCount, 60)
        for unit in plan.evaluationUnits {
            guard let model = plan.trainUnit(id: unit.trainUnitID) else { return XCTFail("no model for \(unit.label)") }
            XCTAssertEqual(model.fold, unit.fold)
            XCTAssertEqual(model.dataset.id, unit.trainDatasetID)
            XCTAssertTrue(unit.dihedral)
            if unit.testDataset.id == unit.trainDatasetID {
                XCTAssertEqual(unit.scope, .testFold(model.fold), "diagonal: model i on its own fold i")
            } else {
                XCTAssertEqual(unit.scope, .wholeDataset, "off-diagonal: the whole other dataset")
            }
        }
        // Every cell has exactly one unit per fold model.
        for row in plan.rows {
            for column in plan.columns {
                let folds = plan.evaluationUnits.filter { $0.trainDatasetID == row && $0.testDataset.id == column }.map(\.fold)
                XCTAssertEqual(folds.sorted(), [0, 1, 2, 3, 4])
            }
        }
        // Training first, then evaluation, by index.
        if case .train = try plan.unit(at: 14) {} else { XCTFail("unit 14 should train") }
        if case .evaluate = try plan.unit(at: 15) {} else { XCTFail("unit 15 should evaluate") }
        XCTAssertThrowsError(try plan.unit(at: 60))
        XCTAssertThrowsError(try plan.unit(at: -1))
        XCTAssertEqual(Set(plan.units.map(\.id)).count, 60, "unit ids are unique")
    }

    func testUnitIDsDependOnlyOnWhatDeterminesTheWork() throws {
        let first = try samplePlan()
        let second = try samplePlan()
        XCTAssertEqual(first, second)
        XCTAssertEqual(first.id, second.id)

        // Renaming a dataset or moving its folder keeps every id (same version = same model).
        var renamed = sampleDatasets()
        renamed[0].name = "renamed"
        renamed[0].folder = "/elsewhere"
        let settings = TrainingVariant(label: "default", settings: TrainingSettings(epochs: 3, batchSize: 4))
        let moved = try MatrixPlan(name: "other name", trainOn: renamed, testOn: renamed, folds: 5, variants: [settings],
                                   executor: .simulated)
        XCTAssertEqual(moved.units.map(\.id), first.units.map(\.id))

        // A model trained in one plan is the same unit in a smaller plan that needs it.
        let single = try MatrixPlan(name: "one", trainOn: [sampleDatasets()[0]], testOn: [sampleDatasets()[1]], folds: 5,
                                    variants: [settings], executor: .simulated)
        XCTAssertEqual(single.trainUnits.map(\.id), Array(first.trainUnits.prefix(5)).map(\.id))

        // Any training setting, the seed or the executor changes the training ids.
        var changed = settings
        changed.baseSeed = 7
        let reseeded = try MatrixPlan(name: "x", trainOn: sampleDatasets(), testOn: sampleDatasets(), folds: 5,
                                      variants: [changed], executor: .simulated)
        XCTAssertTrue(Set(reseeded.trainUnits.map(\.id)).isDisjoint(with: first.trainUnits.map(\.id)))
        let trained = try samplePlan(executor: .trainer)
        XCTAssertTrue(Set(trained.trainUnits.map(\.id)).isDisjoint(with: first.trainUnits.map(\.id)))
        var architecture = settings
        architecture.settings.architecture = UNetArchitecture(widths: [4, 8], bottleneckWidth: 16)
        let narrower = try MatrixPlan(name: "x", trainOn: sampleDatasets(), testOn: sampleDatasets(), folds: 5,
                                      variants: [architecture], executor: .simulated)
        XCTAssertTrue(Set(narrower.trainUnits.map(\.id)).isDisjoint(with: first.trainUnits.map(\.id)))
        // Fold k of a version is the same model whether a plan trains 4 or 5 folds of it, and
        // whether the matrix or `hrtem train` (a lone unit) trains it.
        let fewerFolds = try samplePlan(folds: 4)
        XCTAssertEqual(Set(fewerFolds.trainUnits.map(\.id)),
                       Set(first.trainUnits.filter { $0.fold < 4 }.map(\.id)))
        let lone = try TrainUnit(dataset: sampleDatasets()[1], fold: 2, settings: settings.settings, executor: .simulated)
        XCTAssertEqual(lone.id, first.trainUnits.first { $0.dataset.id == "bbbb0002" && $0.fold == 2 }?.id)
    }

    func testPlanFileRoundTrips() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let plan = try samplePlan()
        let url = folder.appendingPathComponent("plan.json")
        try plan.write(to: url)
        XCTAssertEqual(try MatrixPlan.read(from: url), plan)
        let bytes = try Data(contentsOf: url)
        try plan.write(to: url)
        XCTAssertEqual(try Data(contentsOf: url), bytes, "same plan, same bytes")

        try Data("{\"formatVersion\": 2}".utf8).write(to: url)
        XCTAssertThrowsError(try MatrixPlan.read(from: url)) { error in
            XCTAssertTrue("\(error)".contains(url.path) && "\(error)".contains("missing key"), "\(error)")
        }
        try Data("{\"formatVersion\": 1}".utf8).write(to: url)
        XCTAssertThrowsError(try MatrixPlan.read(from: url)) { error in
            XCTAssertTrue("\(error)".contains("plan format 1 is not the supported 2"), "\(error)")
        }
        XCTAssertThrowsError(try MatrixPlan.read(from: folder.appendingPathComponent("absent.json")))
    }

    func testBadPlansAreRefusedWithAReason() throws {
        let datasets = sampleDatasets(folds: 3)
        let variant = [TrainingVariant(label: "d", settings: TrainingSettings())]
        XCTAssertThrowsError(try MatrixPlan(name: "x", trainOn: datasets, testOn: datasets, folds: 5, variants: variant)) {
            XCTAssertTrue("\($0)".contains("defines 3 folds"), "\($0)")
        }
        XCTAssertThrowsError(try MatrixPlan(name: "x", trainOn: [datasets[0], datasets[0]], testOn: datasets, folds: 2,
                                            variants: variant)) { XCTAssertTrue("\($0)".contains("twice"), "\($0)") }
        XCTAssertThrowsError(try MatrixPlan(name: "x", trainOn: [], testOn: datasets, folds: 2, variants: variant))
        XCTAssertThrowsError(try MatrixPlan(name: "x", trainOn: datasets, testOn: datasets, folds: 1, variants: variant))
        var bad = TrainingSettings()
        bad.noise = .fixed(-0.5)
        XCTAssertThrowsError(try MatrixPlan(name: "x", trainOn: datasets, testOn: datasets, folds: 2,
                                            variants: [TrainingVariant(label: "b", settings: bad)])) {
            XCTAssertTrue("\($0)".contains("variant b: training settings: noise rho must be a finite number >= 0, got -0.5"), "\($0)")
        }
        let same = TrainingVariant(label: "again", settings: TrainingSettings())
        XCTAssertThrowsError(try MatrixPlan(name: "x", trainOn: datasets, testOn: datasets, folds: 2,
                                            variants: variant + [same])) { XCTAssertTrue("\($0)".contains("identical"), "\($0)") }
    }

    func testPopulationStandardDeviation() throws {
        let summary = try XCTUnwrap(Summary([1, 2, 3, 4]))
        XCTAssertEqual(summary.mean, 2.5)
        XCTAssertEqual(summary.std, 1.25.squareRoot(), accuracy: 1e-15, "ddof 0, not the sample std 1.29")
        XCTAssertEqual(summary.min, 1)
        XCTAssertEqual(summary.max, 4)
        XCTAssertEqual(Summary([0.8])?.std, 0)
        XCTAssertNil(Summary([]))
    }

    func testNoiseSweepPlansOneVariantPerLevel() throws {
        let datasets = sampleDatasets()
        let plan = try NoiseSweep.plan(name: "sweep", train: datasets[0], test: [datasets[1], datasets[2]],
                                       levels: try NoiseSweep.parseLevels("0, 0.25,0.8"), mode: .fixed,
                                       base: TrainingSettings(epochs: 2), folds: 3, executor: .simulated)
        XCTAssertEqual(plan.kind, .noiseSweep)
        XCTAssertEqual(plan.variants.map(\.sweepValue), [0, 0.25, 0.8])
        XCTAssertEqual(plan.variants.map(\.settings.noise), [NoiseAugmentation.none, .fixed(0.25), .fixed(0.8)])
        XCTAssertEqual(plan.trainUnits.count, 3 * 3)
        XCTAssertEqual(plan.evaluationUnits.count, 3 * 3 * 2)
        XCTAssertTrue(plan.evaluationUnits.allSatisfy { $0.scope == .wholeDataset })
        let uniform = try NoiseSweep.plan(name: "sweep", train: datasets[0], test: [datasets[0]], levels: [0.8],
                                          mode: .uniformUpTo, base: TrainingSettings(), folds: 2)
        XCTAssertEqual(uniform.variants[0].settings.noise, .uniform(0.8))
        XCTAssertEqual(uniform.evaluationUnits.map(\.scope), [.testFold(0), .testFold(1)])
        XCTAssertThrowsError(try NoiseSweep.parseLevels("0,x")) { XCTAssertTrue("\($0)".contains("\"x\""), "\($0)") }
        XCTAssertThrowsError(try NoiseSweep.plan(name: "s", train: datasets[0], test: [datasets[1]], levels: [0.1, 0.1],
                                                 mode: .fixed, base: TrainingSettings(), folds: 2))
    }
}
