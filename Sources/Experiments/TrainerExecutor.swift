import Catalog
import Foundation

/// Runs units with the bundled residual U-Net trainer and evaluator (module Segmentation).
///
/// Not wired yet: the trainer of issue 7 has not landed on main. Until it does, creating this
/// executor fails with a message saying so, and plans for it can still be planned, emitted for
/// Slurm and reported on.
public struct TrainerExecutor: UnitExecutor {
    public let dataFolder: DataFolder

    /// - Throws: `ExperimentError` while the trainer is not part of the build.
    public init(dataFolder: DataFolder) throws {
        self.dataFolder = dataFolder
        throw ExperimentError("the bundled trainer is not part of this build yet (Segmentation's train/evaluate); plan with `--executor simulated` to exercise the runner, or emit the plan for Slurm")
    }

    public func train(_ unit: TrainUnit) throws -> ModelRef {
        throw ExperimentError("\(unit.label): the bundled trainer is not part of this build yet")
    }

    public func evaluate(_ unit: EvaluateUnit, model: ModelRef) throws -> EvaluationMetrics {
        throw ExperimentError("\(unit.label): the bundled evaluator is not part of this build yet")
    }
}
