import Foundation
import Micrograph
import Segmentation

/// A trained fold model as recorded: its id (the training unit's), its folder and its card
/// (the folder's `model.json`).
public struct ModelRef: Codable, Hashable, Sendable {
    public var id: String
    /// Folder holding the weights (`model.safetensors`) and the card (`model.json`).
    public var folder: String
    public var card: ModelCard

    public init(id: String, folder: String, card: ModelCard) {
        self.id = id
        self.folder = folder
        self.card = card
    }
}

/// One evaluation as recorded: the study's metrics of a model on a set of patches, and what the
/// run left beside them.
public struct Evaluation: Codable, Hashable, Sendable {
    public var metrics: Metrics
    /// PNG files with sample predictions drawn over their images, if the evaluator wrote any.
    public var sampleOverlays: [String]?
    public var seconds: Double?
    /// Particle-level scores (count F1, size bias), when the evaluator measured them; absent in
    /// records made before they were.
    public var particles: ParticleScores?

    public init(metrics: Metrics, sampleOverlays: [String]? = nil, seconds: Double? = nil, particles: ParticleScores? = nil) {
        self.metrics = metrics
        self.sampleOverlays = sampleOverlays
        self.seconds = seconds
        self.particles = particles
    }
}

/// Does the work of units. Implementations must be deterministic for a unit (same unit, same
/// result) and safe to call from several threads at once for different units.
public protocol UnitExecutor: Sendable {
    /// Trains the fold model of `unit` (or finds it already trained under `unit.id`).
    func train(_ unit: TrainUnit) throws -> ModelRef
    /// Scores `model` on the patches `unit` names.
    func evaluate(_ unit: EvaluateUnit, model: ModelRef) throws -> Evaluation
}

/// Where finished units are recorded. A unit whose result is recorded is never run again.
/// Implementations must be safe for concurrent calls on different units, and a record must be
/// all-or-nothing (a crash mid-write leaves the unit unrecorded).
public protocol ResultStore: Sendable {
    func model(for unit: TrainUnit) throws -> ModelRef?
    func record(_ model: ModelRef, for unit: TrainUnit) throws
    func evaluation(for unit: EvaluateUnit) throws -> Evaluation?
    func record(_ evaluation: Evaluation, for unit: EvaluateUnit) throws
}

/// A result store as a folder of small JSON files, one per unit, each written atomically:
/// `models/<train unit id>.json`, `evaluations/<evaluate unit id>.json`. Many processes (Slurm
/// array tasks on shared storage, where SQLite's locking is unreliable) can write into the same
/// folder without a lock, because no two write the same file.
public struct JSONResultStore: ResultStore {
    public let folder: URL

    public init(folder: URL) { self.folder = folder }

    private func modelFile(_ id: String) -> URL { folder.appendingPathComponent("models/\(id).json") }
    private func evaluationFile(_ id: String) -> URL { folder.appendingPathComponent("evaluations/\(id).json") }

    public func model(for unit: TrainUnit) throws -> ModelRef? { try load(ModelRef.self, modelFile(unit.id)) }
    public func record(_ model: ModelRef, for unit: TrainUnit) throws {
        try writeFileAtomically(try CanonicalJSON.file(model), to: modelFile(unit.id))
    }
    public func evaluation(for unit: EvaluateUnit) throws -> Evaluation? {
        try load(Evaluation.self, evaluationFile(unit.id))
    }
    public func record(_ evaluation: Evaluation, for unit: EvaluateUnit) throws {
        try writeFileAtomically(try CanonicalJSON.file(evaluation), to: evaluationFile(unit.id))
    }

    private func load<T: Decodable>(_ type: T.Type, _ url: URL) throws -> T? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try readJSONFile(T.self, from: url, what: "a recorded result")
    }
}

/// Records into several stores and finds a result in any of them: `[JSON folder, catalog]`
/// keeps the plan's results folder complete while the catalog gets every row, and a model or
/// evaluation recorded in the catalog by another plan (same unit id) is reused. Records go to
/// the stores in reverse order, so a unit the first store holds is in all of them.
public struct LayeredResultStore: ResultStore {
    public let stores: [ResultStore]
    public init(_ stores: [ResultStore]) { self.stores = stores }

    public func model(for unit: TrainUnit) throws -> ModelRef? {
        for (index, store) in stores.enumerated() {
            if let model = try store.model(for: unit) {
                for earlier in stores[..<index] { try earlier.record(model, for: unit) }
                return model
            }
        }
        return nil
    }
    public func record(_ model: ModelRef, for unit: TrainUnit) throws {
        for store in stores.reversed() { try store.record(model, for: unit) }
    }
    public func evaluation(for unit: EvaluateUnit) throws -> Evaluation? {
        for (index, store) in stores.enumerated() {
            if let evaluation = try store.evaluation(for: unit) {
                for earlier in stores[..<index] { try earlier.record(evaluation, for: unit) }
                return evaluation
            }
        }
        return nil
    }
    public func record(_ evaluation: Evaluation, for unit: EvaluateUnit) throws {
        for store in stores.reversed() { try store.record(evaluation, for: unit) }
    }
}

/// Copies every result of `plan` found in `source` into `destination` (what `hrtem matrix
/// collect` does after a cluster run). Returns how many records were copied.
@discardableResult
public func copyResults(of plan: MatrixPlan, from source: ResultStore, into destination: ResultStore) throws -> Int {
    var copied = 0
    for unit in plan.trainUnits {
        if let model = try source.model(for: unit), try destination.model(for: unit) != model {
            try destination.record(model, for: unit)
            copied += 1
        }
    }
    for unit in plan.evaluationUnits {
        if let evaluation = try source.evaluation(for: unit), try destination.evaluation(for: unit) != evaluation {
            try destination.record(evaluation, for: unit)
            copied += 1
        }
    }
    return copied
}

/// A deterministic stand-in executor that trains nothing: its scores are a function of the
/// unit's content only (same unit, same numbers, on any machine), shaped like the study's
/// main finding (a model scores best on its own dataset). It exists to exercise the runner, resumability, Slurm and reports quickly;
/// plans record it as `executor: simulated` and their unit ids differ from trained ones.
public struct SimulatedExecutor: UnitExecutor {
    /// Folder where placeholder model folders (a JSON card only) are written, or nil for none.
    public var modelsFolder: URL?
    /// Seconds each unit pretends to work (lets tests interrupt a run mid-way).
    public var secondsPerUnit: Double

    public init(modelsFolder: URL? = nil, secondsPerUnit: Double = 0) {
        self.modelsFolder = modelsFolder
        self.secondsPerUnit = secondsPerUnit
    }

    public func train(_ unit: TrainUnit) throws -> ModelRef {
        if secondsPerUnit > 0 { Thread.sleep(forTimeInterval: secondsPerUnit) }
        let jitter = SimulatedExecutor.unitInterval(unit.id)
        let card = ModelCard(architecture: unit.settings.architecture, parameters: 0, datasetVersion: unit.dataset.id,
                             datasetFolder: unit.dataset.folder, fold: unit.fold, seed: unit.settings.seed ?? 0,
                             configuration: unit.settings, epochs: unit.settings.epochs,
                             bestEpoch: 1 + Int(jitter * Double(unit.settings.epochs)),
                             bestValidationLoss: 0.05 + 0.1 * jitter, validation: nil, trainingSeconds: 0)
        var folder = ""
        if let modelsFolder {
            // A card only, marked as the simulated executor's: no weights, nothing to load.
            let url = modelsFolder.appendingPathComponent(unit.id)
            try writeFileAtomically(try CanonicalJSON.file(card), to: url.appendingPathComponent("simulated-card.json"))
            folder = url.path
        }
        return ModelRef(id: unit.id, folder: folder, card: card)
    }

    public func evaluate(_ unit: EvaluateUnit, model: ModelRef) throws -> Evaluation {
        if secondsPerUnit > 0 { Thread.sleep(forTimeInterval: secondsPerUnit) }
        let jitter = SimulatedExecutor.unitInterval(unit.id) - 0.5
        let same = unit.trainDatasetID == unit.testDataset.id
        // Off the diagonal: a pair-specific drop, stable for the pair whatever the fold.
        let base = same ? 0.9 : 0.5 + 0.3 * SimulatedExecutor.unitInterval(unit.trainDatasetID + "|" + unit.testDataset.id)
        let hard = min(0.99, max(0.0, base + 0.04 * jitter))
        return Evaluation(metrics: Metrics(hardDice: hard, softDice: hard - 0.01,
                                           falsePositiveRate: 0.02 + 0.1 * (1 - hard) * (jitter + 0.5),
                                           falseNegativeRate: 0.03 + 0.2 * (1 - hard) * (0.5 - jitter),
                                           loss: 0.05 + (1 - hard) * 0.5, patches: 8 * 10))
    }

    /// A number in [0, 1) from a string's hash.
    static func unitInterval(_ text: String) -> Double {
        let hex = stableHash(text).prefix(12)
        return Double(UInt64(hex, radix: 16) ?? 0) / Double(1 << 48)
    }
}
