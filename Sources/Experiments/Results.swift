import Foundation
import Segmentation

/// Mean, population standard deviation (ddof 0, as the study reports) and the values themselves.
public struct Summary: Codable, Hashable, Sendable {
    public var mean: Double
    /// sqrt(sum((x - mean)^2) / n).
    public var std: Double
    public var min: Double
    public var max: Double
    /// One value per fold model, in fold order.
    public var values: [Double]

    /// - Returns: nil for no values.
    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let n = Double(values.count)
        let mean = values.reduce(0, +) / n
        self.mean = mean
        self.std = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n).squareRoot()
        self.min = values.min()!
        self.max = values.max()!
        self.values = values
    }
}

/// One fold model's scores in a cell.
public struct FoldResult: Codable, Hashable, Sendable {
    public var fold: Int
    public var modelID: String
    public var evaluationID: String
    public var metrics: Metrics
    /// Sample prediction overlays the evaluation wrote (PNG paths), if any.
    public var sampleOverlays: [String]?
    /// Particle-level scores, when the evaluation measured them.
    public var particles: ParticleScores? = nil
}

/// One cell of the matrix: the fold models of a row dataset (one training variant) scored on a
/// column dataset.
public struct CellResult: Codable, Hashable, Sendable {
    public var trainDatasetID: String
    public var testDatasetID: String
    public var variantIndex: Int
    /// "own test fold" on the diagonal, "whole dataset" elsewhere.
    public var scope: String
    public var folds: [FoldResult]
    /// Fold models the plan has for this cell; the cell is complete when every one is scored.
    public var expectedFolds: Int
    public var hardDice: Summary?
    public var softDice: Summary?
    public var loss: Summary?
    public var falsePositiveRate: Summary?
    public var falseNegativeRate: Summary?
    /// Folds whose model collapsed (its card says so): listed in `folds` but left out of every
    /// summary above, so a dead model never enters a mean unannounced. Nil when none did.
    public var collapsedFolds: [Int]?

    public var isComplete: Bool { folds.count == expectedFolds }
    public var isDiagonal: Bool { trainDatasetID == testDatasetID }
}

/// Every cell of a plan with whatever results a store holds for it.
public struct MatrixResults: Codable, Hashable, Sendable {
    public var plan: MatrixPlan
    /// Row-major: for each row dataset, each variant, each column dataset.
    public var cells: [CellResult]
    /// Recorded fold models, by training unit id.
    public var models: [String: ModelRef]

    /// Gathers the recorded results of `plan` from `store`.
    /// - Throws: whatever the store throws reading a record.
    public init(plan: MatrixPlan, store: ResultStore) throws {
        self.plan = plan
        var models: [String: ModelRef] = [:]
        for unit in plan.trainUnits {
            if let model = try store.model(for: unit) { models[unit.id] = model }
        }
        for model in plan.models ?? [] { models[model.id] = model }
        self.models = models
        var cells: [CellResult] = []
        for row in plan.rows {
            for variantIndex in plan.variants.indices {
                for column in plan.columns {
                    let units = plan.evaluationUnits.filter {
                        $0.trainDatasetID == row && $0.variantIndex == variantIndex && $0.testDataset.id == column
                    }
                    var folds: [FoldResult] = []
                    for unit in units.sorted(by: { $0.fold < $1.fold }) {
                        if let evaluation = try store.evaluation(for: unit) {
                            folds.append(FoldResult(fold: unit.fold, modelID: unit.trainUnitID, evaluationID: unit.id,
                                                    metrics: evaluation.metrics, sampleOverlays: evaluation.sampleOverlays,
                                                    particles: evaluation.particles))
                        }
                    }
                    let collapsedFolds = folds.filter { models[$0.modelID]?.card.collapse != nil }.map(\.fold)
                    let metrics = folds.filter { !collapsedFolds.contains($0.fold) }.map(\.metrics)
                    cells.append(CellResult(
                        trainDatasetID: row, testDatasetID: column, variantIndex: variantIndex,
                        scope: row == column ? "own test fold" : "whole dataset",
                        folds: folds, expectedFolds: units.count,
                        hardDice: Summary(metrics.map(\.hardDice)), softDice: Summary(metrics.map(\.softDice)),
                        loss: Summary(metrics.map(\.loss)),
                        falsePositiveRate: Summary(metrics.map(\.falsePositiveRate)),
                        falseNegativeRate: Summary(metrics.map(\.falseNegativeRate)),
                        collapsedFolds: collapsedFolds.isEmpty ? nil : collapsedFolds))
                }
            }
        }
        self.cells = cells
    }

    public var isComplete: Bool { cells.allSatisfy(\.isComplete) }
    /// Units with no recorded result.
    public var missingUnits: Int {
        plan.trainUnits.filter { models[$0.id] == nil }.count + cells.reduce(0) { $0 + $1.expectedFolds - $1.folds.count }
    }

    public func cell(train: String, test: String, variant: Int = 0) -> CellResult? {
        cells.first { $0.trainDatasetID == train && $0.testDatasetID == test && $0.variantIndex == variant }
    }
}
