import Foundation

/// What happened to one unit in a run.
public enum UnitOutcome: String, Codable, Sendable {
    /// The unit ran and its result was recorded.
    case ran
    /// A result was already recorded; nothing was done.
    case alreadyDone = "already-done"
    /// The unit could not run because the unit it needs failed.
    case skipped
    case failed
}

/// A line of progress from the runner.
public struct RunEvent: Sendable {
    public var unitIndex: Int
    public var unitLabel: String
    public var outcome: UnitOutcome
    public var message: String?
    public var finished: Int
    public var total: Int
}

/// The tally of a run.
public struct RunSummary: Sendable, Equatable {
    public var ran = 0
    public var alreadyDone = 0
    public var skipped = 0
    public var failures: [String] = []

    public var trainedModels = 0
    public var evaluations = 0
}

/// Runs the units of a plan through an executor, recording each result in a store as soon as
/// it is known, so that an interrupted run resumes where it stopped: a unit whose result is
/// recorded is never run again.
///
/// Scheduling: up to `jobs` units at once; an evaluation unit starts once its model's training
/// unit is recorded (so the first fold models are being evaluated while later ones train).
/// A failed unit does not stop the others; units that need it are skipped, and `run()` throws
/// once everything that could run has.
public final class MatrixRunner: Sendable {
    public let plan: MatrixPlan
    public let executor: UnitExecutor
    public let store: ResultStore
    public let jobs: Int
    private let progress: (@Sendable (RunEvent) -> Void)?

    public init(plan: MatrixPlan, executor: UnitExecutor, store: ResultStore, jobs: Int = 1,
                progress: (@Sendable (RunEvent) -> Void)? = nil) {
        self.plan = plan
        self.executor = executor
        self.store = store
        self.jobs = max(1, jobs)
        self.progress = progress
    }

    /// Runs one unit by its index in `plan.units` (what a Slurm array task does).
    /// - Throws: `ExperimentError` for a bad index or an evaluation whose model is not recorded
    ///   yet; whatever the executor or the store throws.
    @discardableResult
    public func runUnit(at index: Int) throws -> UnitOutcome {
        try execute(try plan.unit(at: index))
    }

    /// Runs every unit not yet recorded.
    /// - Throws: `MatrixRunError` listing the units that failed or were skipped.
    @discardableResult
    public func run() throws -> RunSummary {
        let units = plan.units
        let condition = NSCondition()
        var next = 0                       // units are started in plan order
        // The models an evaluation-only plan scores exist already.
        var trainState = Dictionary(uniqueKeysWithValues: (plan.models ?? []).map { ($0.id, UnitOutcome.alreadyDone) })
        var waiting: [Int] = []            // evaluation units whose model is not ready yet
        var finished = 0
        var running = 0
        var summary = RunSummary()

        // Chooses the next startable unit under the lock, or nil when nothing can start now.
        func takeNext() -> (Int, PlanUnit)? {
            for (position, index) in waiting.enumerated() {
                if case .evaluate(let unit) = units[index], trainState[unit.trainUnitID] != nil {
                    waiting.remove(at: position)
                    return (index, units[index])
                }
            }
            while next < units.count {
                let index = next
                next += 1
                if case .evaluate(let unit) = units[index], trainState[unit.trainUnitID] == nil {
                    waiting.append(index)
                    continue
                }
                return (index, units[index])
            }
            return nil
        }

        func worker() {
            condition.lock()
            while true {
                if let (index, unit) = takeNext() {
                    running += 1
                    var modelFailed = false
                    if case .evaluate(let evaluation) = unit, let trainOutcome = trainState[evaluation.trainUnitID] {
                        modelFailed = trainOutcome == .failed || trainOutcome == .skipped
                    }
                    condition.unlock()
                    var outcome: UnitOutcome
                    var message: String?
                    if modelFailed, case .evaluate(let evaluation) = unit {
                        outcome = .skipped
                        message = "its model (\(evaluation.trainUnitID.prefix(12))) failed to train"
                    } else {
                        do { outcome = try execute(unit) } catch {
                            outcome = .failed
                            message = "\(error)"
                        }
                    }
                    condition.lock()
                    running -= 1
                    finished += 1
                    if case .train(let training) = unit {
                        trainState[training.id] = outcome
                        if outcome == .ran { summary.trainedModels += 1 }
                    } else if outcome == .ran {
                        summary.evaluations += 1
                    }
                    switch outcome {
                    case .ran: summary.ran += 1
                    case .alreadyDone: summary.alreadyDone += 1
                    case .skipped: summary.skipped += 1; summary.failures.append("\(unit.label): skipped, \(message ?? "")")
                    case .failed: summary.failures.append("\(unit.label): \(message ?? "failed")")
                    }
                    progress?(RunEvent(unitIndex: index, unitLabel: unit.label, outcome: outcome, message: message,
                                       finished: finished, total: units.count))
                    condition.broadcast()
                } else if running == 0 && next >= units.count {
                    // Nothing runs, nothing can start: done (waiting is empty, as every training
                    // unit has an outcome once nothing runs).
                    condition.broadcast()
                    condition.unlock()
                    return
                } else {
                    condition.wait()
                }
            }
        }

        // Worker threads run `worker`, which only touches the state above under `condition`.
        let work = UncheckedSendable(worker)
        let group = DispatchGroup()
        for _ in 0..<min(jobs, max(1, units.count)) {
            group.enter()
            Thread.detachNewThread {
                work.value()
                group.leave()
            }
        }
        group.wait()
        if !summary.failures.isEmpty { throw MatrixRunError(summary: summary) }
        return summary
    }

    private func execute(_ unit: PlanUnit) throws -> UnitOutcome {
        switch unit {
        case .train(let training):
            if try store.model(for: training) != nil { return .alreadyDone }
            let model = try executor.train(training)
            try store.record(model, for: training)
            return .ran
        case .evaluate(let evaluation):
            if try store.evaluation(for: evaluation) != nil { return .alreadyDone }
            if let model = plan.existingModel(id: evaluation.trainUnitID) {
                try store.record(try executor.evaluate(evaluation, model: model), for: evaluation)
                return .ran
            }
            guard let training = plan.trainUnit(id: evaluation.trainUnitID) else {
                throw ExperimentError("the plan has no training unit \(evaluation.trainUnitID)", subject: evaluation.label)
            }
            guard let model = try store.model(for: training) else {
                throw ExperimentError("its model (training unit \(evaluation.trainUnitID.prefix(12))) is not recorded yet; run the training units first",
                                      subject: evaluation.label)
            }
            let metrics = try executor.evaluate(evaluation, model: model)
            try store.record(metrics, for: evaluation)
            return .ran
        }
    }
}

/// Units of a run failed; the ones that finished are recorded, and a rerun retries the rest.
public struct MatrixRunError: Error, CustomStringConvertible {
    public var summary: RunSummary
    public var description: String {
        "\(summary.failures.count) unit(s) did not finish (\(summary.ran) ran, \(summary.alreadyDone) were already done; rerun to retry):\n  "
            + summary.failures.joined(separator: "\n  ")
    }
}

/// Carries a value across threads where the code guards it itself (here: a lock).
private struct UncheckedSendable<Value>: @unchecked Sendable {
    // Sendable by hand: its one use is `run`'s worker closure, whose shared state is touched
    // only while holding the run's condition lock.
    let value: Value
    init(_ value: Value) { self.value = value }
}
