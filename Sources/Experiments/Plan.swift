import Foundation
import Micrograph
import Segmentation

/// One fact about a dataset version shown beside its name on the report's axes
/// (e.g. `dose` = `80 e/Å²`). Kept as an ordered list so reports are byte-stable.
public struct MetadataEntry: Codable, Hashable, Sendable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) { self.key = key; self.value = value }
}

/// A dataset version taking part in an experiment: an immutable folder any node can read.
///
/// Only `id` (the version id: a hash of the resolved recipe and its inputs) enters unit ids;
/// `name`, `folder` and `metadata` are for people and for locating the files.
public struct DatasetVersionRef: Codable, Hashable, Sendable {
    /// The version id.
    public var id: String
    /// The recipe name (what people call the dataset).
    public var name: String
    /// Absolute path of the version folder (images.npy, labels.npy, folds.json, recipe.json...).
    public var folder: String
    /// How many folds the version defines (its folds.json), when known.
    public var foldCount: Int?
    /// Key facts for the report's axes, in display order.
    public var metadata: [MetadataEntry]

    public init(id: String, name: String, folder: String, foldCount: Int? = nil, metadata: [MetadataEntry] = []) {
        self.id = id
        self.name = name
        self.folder = folder
        self.foldCount = foldCount
        self.metadata = metadata
    }

    /// `name@<first 12 digits of the version id>`: what reports and logs print.
    public var label: String { "\(name)@\(id.prefix(12))" }
}

/// A named way of training the fold models; a plain matrix has one, a noise sweep one per rho.
public struct TrainingVariant: Codable, Hashable, Sendable {
    public var label: String
    /// The settings every fold model of the variant shares; their `seed` is ignored (see
    /// `baseSeed`).
    public var settings: TrainingSettings
    /// Seed of the run: fold k trains with `SplitMix64(seed: baseSeed).derived(k).next()`; nil
    /// keeps each fold's own seed from the version's folds.json (the study's).
    public var baseSeed: UInt64?
    /// The swept parameter's value (rho for a noise sweep), or nil for a plain matrix.
    public var sweepValue: Double?

    public init(label: String, settings: TrainingSettings, baseSeed: UInt64? = nil, sweepValue: Double? = nil) {
        self.label = label
        self.settings = settings
        self.baseSeed = baseSeed
        self.sweepValue = sweepValue
    }

    /// The settings fold `fold` trains with: the variant's, with the fold's seed.
    public func settings(forFold fold: Int) -> TrainingSettings {
        var settings = self.settings
        settings.seed = baseSeed.map { seed in
            var generator = SplitMix64(seed: seed).derived(UInt64(fold))
            return generator.next()
        }
        return settings
    }
}

/// Train one fold model: fold `fold` of `dataset` is its test fold (the study's rule; the
/// trainer takes validation and training patches from the rest).
public struct TrainUnit: Codable, Hashable, Sendable, Identifiable {
    /// Stable: a hash of the dataset version id, the fold, the settings and the executor kind.
    /// Two plans that share a model share this id, and so does `hrtem train` with the same
    /// settings, so the model is trained once and reused.
    public var id: String
    public var dataset: DatasetVersionRef
    public var fold: Int
    public var variantIndex: Int
    /// The settings of this fold model (its seed resolved: nil is the fold's own).
    public var settings: TrainingSettings

    /// A training unit; its id follows from the rest.
    public init(dataset: DatasetVersionRef, fold: Int, variantIndex: Int = 0, settings: TrainingSettings,
                executor: ExecutorKind) throws {
        id = try MatrixPlan.trainUnitID(datasetID: dataset.id, fold: fold, settings: settings, executor: executor)
        self.dataset = dataset
        self.fold = fold
        self.variantIndex = variantIndex
        self.settings = settings
    }

    public var label: String { "train \(dataset.label) fold \(fold)" }
}

/// Which patches of the test dataset an evaluation scores.
public struct EvaluationScope: Codable, Hashable, Sendable, CustomStringConvertible {
    /// The test fold `fold` only (the diagonal: a model on its own held-out fold), or nil for
    /// every patch of the dataset (off-diagonal cells).
    public var fold: Int?

    public static let wholeDataset = EvaluationScope(fold: nil)
    public static func testFold(_ fold: Int) -> EvaluationScope { EvaluationScope(fold: fold) }

    public var description: String { fold.map { "fold \($0)" } ?? "all" }
}

/// Evaluate one trained model on one dataset version (dihedral x8 on every patch).
public struct EvaluateUnit: Codable, Hashable, Sendable, Identifiable {
    /// Stable: a hash of the training unit id, the test version id, the scope and `dihedral`.
    public var id: String
    public var trainUnitID: String
    public var trainDatasetID: String
    public var variantIndex: Int
    public var fold: Int
    public var testDataset: DatasetVersionRef
    public var scope: EvaluationScope
    /// Score every patch under the 8 dihedral transforms (the study does).
    public var dihedral: Bool
    /// Threads the evaluation uses (the training unit's; not part of the id, which already
    /// depends on it through the training unit).
    public var threads: Int

    /// An evaluation of the model of `trainUnit`; its id follows from the rest.
    public init(of trainUnit: TrainUnit, on testDataset: DatasetVersionRef, scope: EvaluationScope, dihedral: Bool) {
        self.init(modelID: trainUnit.id, trainDatasetID: trainUnit.dataset.id, variantIndex: trainUnit.variantIndex,
                  fold: trainUnit.fold, on: testDataset, scope: scope, dihedral: dihedral, threads: trainUnit.settings.threads)
    }

    /// An evaluation of a model known by its id (its training unit's) and card facts.
    public init(modelID: String, trainDatasetID: String, variantIndex: Int = 0, fold: Int, on testDataset: DatasetVersionRef,
                scope: EvaluationScope, dihedral: Bool, threads: Int) {
        id = MatrixPlan.evaluateUnitID(trainUnitID: modelID, testDatasetID: testDataset.id, scope: scope, dihedral: dihedral)
        trainUnitID = modelID
        self.trainDatasetID = trainDatasetID
        self.variantIndex = variantIndex
        self.fold = fold
        self.testDataset = testDataset
        self.scope = scope
        self.dihedral = dihedral
        self.threads = threads
    }

    public var label: String { "evaluate \(trainUnitID.prefix(12)) on \(testDataset.label) (\(scope))" }
}

/// One unit of work of a plan, as an array task runs it.
public enum PlanUnit: Sendable {
    case train(TrainUnit)
    case evaluate(EvaluateUnit)

    public var id: String {
        switch self {
        case .train(let unit): return unit.id
        case .evaluate(let unit): return unit.id
        }
    }

    public var label: String {
        switch self {
        case .train(let unit): return unit.label
        case .evaluate(let unit): return unit.label
        }
    }
}

/// Which implementation runs the units. Part of every unit id, so results of the simulated
/// executor (plumbing tests) can never be mistaken for trained models.
public enum ExecutorKind: String, Codable, Sendable, CaseIterable {
    /// The bundled U-Net trainer and evaluator (Segmentation).
    case trainer
    /// A deterministic stand-in that trains nothing; for testing the runner, Slurm and reports.
    case simulated
}

/// What an experiment is: a generalization matrix or a parameter sweep.
public enum ExperimentKind: String, Codable, Sendable {
    case matrix
    case noiseSweep = "noise-sweep"
    /// Existing fold models (imported or trained earlier) scored with the matrix's cell rule;
    /// nothing is trained.
    case evaluation
}

/// A whole experiment as a list of units: the same object the local runner executes and the
/// Slurm array tasks read (`plan.json`).
///
/// Layout of `units`: every training unit first (index 0..<trainUnits.count), then every
/// evaluation unit; Slurm's training array covers the first block and the evaluation array the
/// second, offset by `trainUnits.count`.
///
/// The study's cell rule: for a row dataset A and a column dataset B, A == B evaluates model i on
/// fold i of A; A != B evaluates every fold model on the whole of B. Dihedral x8 everywhere.
public struct MatrixPlan: Codable, Hashable, Sendable {
    public static let formatVersion = 2

    public var formatVersion: Int
    public var kind: ExperimentKind
    public var name: String
    /// Hash of the unit ids: two plans with the same id do the same work.
    public var id: String
    public var executor: ExecutorKind
    /// Fold models trained per (row dataset, variant): folds 0..<folds.
    public var folds: Int
    /// Every dataset version the plan touches, rows first, without repeats.
    public var datasets: [DatasetVersionRef]
    /// Version ids of the datasets trained on (matrix rows), in order.
    public var rows: [String]
    /// Version ids of the datasets tested on (matrix columns), in order.
    public var columns: [String]
    public var variants: [TrainingVariant]
    public var trainUnits: [TrainUnit]
    public var evaluationUnits: [EvaluateUnit]
    /// The fold models an evaluation-only plan scores (it has no training units); nil otherwise.
    public var models: [ModelRef]?
    /// The command line that made the plan, for the report's "how to reproduce".
    public var commandLine: [String]
    public var hrtemVersion: String

    /// Plans an experiment.
    /// - Parameters:
    ///   - trainOn: the matrix rows; `testOn`: the columns (for a plain matrix, the same list).
    ///   - folds: fold models per row and variant; at most each row dataset's fold count.
    /// - Throws: `ExperimentError` for an empty list, a repeated dataset, bad settings, or more
    ///   folds than a dataset defines.
    public init(kind: ExperimentKind = .matrix, name: String, trainOn: [DatasetVersionRef], testOn: [DatasetVersionRef],
                folds: Int, variants: [TrainingVariant], executor: ExecutorKind = .trainer,
                dihedral: Bool = true, commandLine: [String] = []) throws {
        guard !trainOn.isEmpty else { throw ExperimentError("no dataset to train on") }
        guard !testOn.isEmpty else { throw ExperimentError("no dataset to test on") }
        guard !variants.isEmpty else { throw ExperimentError("no training settings") }
        guard folds >= 2 else { throw ExperimentError("folds must be at least 2 (one tests, the rest train), got \(folds)") }
        for list in [trainOn, testOn] {
            var seen = Set<String>()
            for dataset in list where !seen.insert(dataset.id).inserted {
                throw ExperimentError("is listed twice", subject: "dataset \(dataset.label)")
            }
        }
        for dataset in trainOn {
            if let count = dataset.foldCount, folds > count {
                throw ExperimentError("defines \(count) folds; cannot train \(folds) fold models", subject: "dataset \(dataset.label)")
            }
        }
        for variant in variants {
            do { try variant.settings.validate() } catch { throw ExperimentError("\(error)", subject: "variant \(variant.label)") }
        }

        var datasets = trainOn
        for dataset in testOn where !datasets.contains(where: { $0.id == dataset.id }) { datasets.append(dataset) }

        var trainUnits: [TrainUnit] = []
        var evaluationUnits: [EvaluateUnit] = []
        for train in trainOn {
            for (variantIndex, variant) in variants.enumerated() {
                for fold in 0..<folds {
                    trainUnits.append(try TrainUnit(dataset: train, fold: fold, variantIndex: variantIndex,
                                                    settings: variant.settings(forFold: fold), executor: executor))
                }
            }
        }
        for trainUnit in trainUnits {
            for test in testOn {
                let scope: EvaluationScope = test.id == trainUnit.dataset.id ? .testFold(trainUnit.fold) : .wholeDataset
                evaluationUnits.append(EvaluateUnit(of: trainUnit, on: test, scope: scope, dihedral: dihedral))
            }
        }
        var seenUnits = Set<String>()
        for id in trainUnits.map(\.id) + evaluationUnits.map(\.id) where !seenUnits.insert(id).inserted {
            throw ExperimentError("two units of the plan are identical (\(id.prefix(12))); are two variants the same settings?")
        }

        self.formatVersion = MatrixPlan.formatVersion
        self.kind = kind
        self.name = name
        self.executor = executor
        self.folds = folds
        self.datasets = datasets
        self.rows = trainOn.map(\.id)
        self.columns = testOn.map(\.id)
        self.variants = variants
        self.trainUnits = trainUnits
        self.evaluationUnits = evaluationUnits
        self.models = nil
        self.commandLine = commandLine
        self.hrtemVersion = hrtemBuildVersion
        self.id = String(stableHash(([kind.rawValue] + trainUnits.map(\.id) + evaluationUnits.map(\.id)).joined(separator: "\n")).prefix(16))
    }

    /// Every unit, training first: the index an array task is given.
    public var units: [PlanUnit] { trainUnits.map(PlanUnit.train) + evaluationUnits.map(PlanUnit.evaluate) }
    public var unitCount: Int { trainUnits.count + evaluationUnits.count }

    /// The unit at `index` of `units`.
    /// - Throws: `ExperimentError` when the index is outside 0..<unitCount.
    public func unit(at index: Int) throws -> PlanUnit {
        if index >= 0 && index < trainUnits.count { return .train(trainUnits[index]) }
        let evaluationIndex = index - trainUnits.count
        if evaluationIndex >= 0 && evaluationIndex < evaluationUnits.count { return .evaluate(evaluationUnits[evaluationIndex]) }
        throw ExperimentError("has units 0...\(unitCount - 1); there is no unit \(index)", subject: "plan \(name)")
    }

    public func trainUnit(id: String) -> TrainUnit? { trainUnits.first { $0.id == id } }
    public func dataset(id: String) -> DatasetVersionRef? { datasets.first { $0.id == id } }

    /// Id of a training unit; see `TrainUnit.id`.
    public static func trainUnitID(datasetID: String, fold: Int, settings: TrainingSettings,
                                   executor: ExecutorKind) throws -> String {
        String(stableHash("train\n\(executor.rawValue)\n\(datasetID)\n\(fold)\n\(try CanonicalJSON.compactString(settings))").prefix(24))
    }

    /// Id of an evaluation unit; see `EvaluateUnit.id`.
    public static func evaluateUnitID(trainUnitID: String, testDatasetID: String, scope: EvaluationScope,
                                      dihedral: Bool) -> String {
        String(stableHash("evaluate\n\(trainUnitID)\n\(testDatasetID)\n\(scope)\n\(dihedral ? "dihedral8" : "plain")").prefix(24))
    }

    // MARK: plan files

    /// Reads a plan written by `write(to:)`.
    /// - Throws: `FormatError` naming the file when it is missing, not JSON, or of another format version.
    public static func read(from url: URL) throws -> MatrixPlan {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw FormatError(file: url.path, "cannot read the plan: \(error.localizedDescription)")
        }
        struct Header: Decodable { var formatVersion: Int }
        if let header = try? JSONDecoder().decode(Header.self, from: data), header.formatVersion != formatVersion {
            throw FormatError(file: url.path, "plan format \(header.formatVersion) is not the supported \(formatVersion); plan the experiment again with this hrtem")
        }
        let plan: MatrixPlan
        do { plan = try JSONDecoder().decode(MatrixPlan.self, from: data) } catch {
            throw FormatError(file: url.path, "not a matrix plan: \(describeDecodingError(error))")
        }
        guard plan.formatVersion == formatVersion else {
            throw FormatError(file: url.path, "plan format \(plan.formatVersion) is not the supported \(formatVersion)")
        }
        return plan
    }

    /// Writes the plan as pretty, key-sorted JSON, atomically.
    public func write(to url: URL) throws {
        try writeFileAtomically(try CanonicalJSON.file(self), to: url)
    }
}

/// An error in setting up or running an experiment, in words a person can act on: what it
/// concerns (a unit, a dataset, a variant, a setting) and what is wrong.
public struct ExperimentError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The unit, dataset, variant or setting the problem concerns; nil for the plan as a whole.
    public var subject: String?
    public var reason: String

    public init(_ reason: String, subject: String? = nil) {
        self.subject = subject
        self.reason = reason
    }

    public var description: String { subject.map { "\($0): \(reason)" } ?? reason }
}

/// SHA-256 of a string's UTF-8 bytes, as hex.
func stableHash(_ text: String) -> String { sha256Hex(Data(text.utf8)) }
