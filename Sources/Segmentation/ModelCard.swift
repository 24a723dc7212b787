import Foundation
import Micrograph

/// Everything that decides how one fold model is trained (with the dataset version and the
/// fold). The CLI's `hrtem train`, the matrix and the noise sweep all describe a training run
/// with this one value; its canonical JSON enters the training unit's id, `threads` included,
/// because the trainer is deterministic only for a given seed AND thread count.
public struct TrainingSettings: Codable, Hashable, Sendable {
    public var architecture: UNetArchitecture = .study
    public var epochs = 250
    public var batchSize = 32
    public var learningRate = 1e-4
    /// Seed of initialization, shuffling and augmentation; nil = the fold's seed from folds.json.
    public var seed: UInt64?
    public var noise: NoiseAugmentation = .none
    /// The online flip + rotation augmentation of training samples.
    public var rotate = true
    /// Dihedral x8 expansion of train, validation and test sets.
    public var dihedral = true
    public var threads = 1
    /// Retrain with the next seed of `collapseRetrySeeds` when the kept model collapsed (see
    /// `Collapse`), up to this many times (`--on-collapse retry`); nil keeps a collapsed model,
    /// marked as such in its card. Absent from the JSON when nil, so ids of runs without it stay.
    public var collapseRetries: Int?
    /// The training objective; nil is the study's cross-entropy (and keeps the JSON, so the ids,
    /// of runs that do not choose one as they were). The kept epoch is the one with the lowest
    /// validation value of this objective (`ModelCard.bestValidationLoss`).
    public var loss: TrainingLoss?
    /// Testing and debugging only: a run that starts from one of these seeds begins dead, its
    /// final layer's bias saturating substrate (+500 / -500), a start no short run recovers
    /// from (`--debug-dead-start-seeds`). Nil in every real run.
    public var deadStartSeeds: [UInt64]?

    /// The study's protocol: 250 epochs, batch 32, Adam lr 1e-4, rotation and dihedral x8 on.
    public init(architecture: UNetArchitecture = .study, epochs: Int = 250, batchSize: Int = 32,
                learningRate: Double = 1e-4, seed: UInt64? = nil, noise: NoiseAugmentation = .none,
                rotate: Bool = true, dihedral: Bool = true, threads: Int = 1, collapseRetries: Int? = nil,
                deadStartSeeds: [UInt64]? = nil, loss: TrainingLoss? = nil) {
        self.architecture = architecture
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.seed = seed
        self.noise = noise
        self.rotate = rotate
        self.dihedral = dihedral
        self.threads = threads
        self.collapseRetries = collapseRetries
        self.deadStartSeeds = deadStartSeeds
        self.loss = loss == .crossEntropy ? nil : loss
    }

    /// Checks every setting.
    /// - Throws: `TrainingSettingsError` naming the setting, the value and the allowed range.
    public func validate() throws {
        func fail(_ setting: String, _ value: String, _ expected: String) -> TrainingSettingsError {
            TrainingSettingsError(setting: setting, value: value, expected: expected)
        }
        guard epochs >= 1 else { throw fail("epochs", "\(epochs)", "at least 1") }
        guard batchSize >= 1 else { throw fail("batch", "\(batchSize)", "at least 1") }
        guard learningRate > 0, learningRate.isFinite else { throw fail("learning rate", "\(learningRate)", "a positive number") }
        guard threads >= 1 else { throw fail("threads", "\(threads)", "at least 1") }
        if let retries = collapseRetries, !(0...10).contains(retries) {
            throw fail("collapse retries", "\(retries)", "between 0 and 10")
        }
        guard !architecture.widths.isEmpty, architecture.widths.allSatisfy({ $0 > 0 }), architecture.bottleneckWidth > 0 else {
            throw fail("widths", "\(architecture.widths) / \(architecture.bottleneckWidth)", "positive channel counts")
        }
        switch noise {
        case .none: break
        case .fixed(let rho), .uniform(let rho):
            guard rho >= 0, rho.isFinite else { throw fail("noise rho", "\(rho)", "a finite number >= 0") }
        }
    }
}

/// A training setting outside its range.
public struct TrainingSettingsError: Error, CustomStringConvertible, Equatable, Sendable {
    public var setting: String
    public var value: String
    public var expected: String
    public var description: String { "training settings: \(setting) must be \(expected), got \(value)" }
}

/// What a training run leaves beside its weights: `model.json`, the one description of a trained
/// model. The trainer writes it, the catalog stores it (column `models.card`), the matrix and
/// the CLI read it back. Format 1.
public struct ModelCard: Codable, Hashable, Sendable {
    public var format = 1
    public var architecture: UNetArchitecture
    public var parameters: Int
    public var datasetVersion: String
    public var datasetFolder: String
    public var fold: Int
    /// The seed the run used (the settings' seed, else the fold's).
    public var seed: UInt64
    public var configuration: TrainingSettings
    public var epochs: Int
    public var bestEpoch: Int
    public var bestValidationLoss: Double
    /// Validation metrics of the kept weights. (Test scores are evaluations, recorded apart:
    /// `hrtem evaluate`, the matrix.)
    public var validation: Metrics?
    public var hrtemVersion: String
    public var trainingSeconds: Double
    /// Set when the kept weights collapsed (constant prediction, or validation hard Dice near zero
    /// with particles in the labels): the model is not a result, and the matrix says so.
    public var collapse: Collapse?
    /// Earlier attempts of this model that collapsed and were retrained with the next seed
    /// (`TrainingSettings.collapseRetries`), in order; nil when the first attempt was kept.
    public var collapsedAttempts: [CollapsedAttempt]?

    public init(architecture: UNetArchitecture, parameters: Int, datasetVersion: String, datasetFolder: String,
                fold: Int, seed: UInt64, configuration: TrainingSettings, epochs: Int, bestEpoch: Int,
                bestValidationLoss: Double, validation: Metrics?, hrtemVersion: String = Micrograph.hrtemVersion,
                trainingSeconds: Double) {
        self.architecture = architecture
        self.parameters = parameters
        self.datasetVersion = datasetVersion
        self.datasetFolder = datasetFolder
        self.fold = fold
        self.seed = seed
        self.configuration = configuration
        self.epochs = epochs
        self.bestEpoch = bestEpoch
        self.bestValidationLoss = bestValidationLoss
        self.validation = validation
        self.hrtemVersion = hrtemVersion
        self.trainingSeconds = trainingSeconds
    }

    public static let fileName = "model.json"
    public static let weightsFileName = "model.safetensors"

    /// Reads `model.json` of a model folder.
    /// - Throws: `FormatError` naming the file and what in it is wrong.
    public static func read(from folder: URL) throws -> ModelCard {
        try readJSONFile(ModelCard.self, from: folder.appendingPathComponent(fileName), what: "a model card")
    }

    /// Writes `model.json` into `folder`, atomically.
    public func write(to folder: URL) throws {
        try writeFileAtomically(try CanonicalJSON.file(self), to: folder.appendingPathComponent(Self.fileName))
    }
}

/// A trained model in memory: its network, card and folder.
public struct TrainedModel {
    public var network: ResidualUNet
    public var card: ModelCard
    public var folder: URL

    public init(network: ResidualUNet, card: ModelCard, folder: URL) {
        self.network = network
        self.card = card
        self.folder = folder
    }

    /// Loads `model.json` and `model.safetensors` of a model folder.
    public static func load(from folder: URL) throws -> TrainedModel {
        let card = try ModelCard.read(from: folder)
        let network = try ResidualUNet.load(from: folder.appendingPathComponent(ModelCard.weightsFileName))
        return TrainedModel(network: network, card: card, folder: folder)
    }

    /// Whether `folder` holds a finished model: weights and card both present.
    public static func isFinished(in folder: URL) -> Bool {
        FileManager.default.fileExists(atPath: folder.appendingPathComponent(ModelCard.weightsFileName).path)
            && FileManager.default.fileExists(atPath: folder.appendingPathComponent(ModelCard.fileName).path)
    }
}
