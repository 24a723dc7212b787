import Catalog
import Foundation
import Micrograph
import Segmentation

/// Fold models that already exist (trained here earlier, or imported) as one matrix row: the
/// dataset they were trained on and the models, one per fold.
public struct ExistingModelRow: Sendable {
    /// The training dataset: a local version, or a stand-in for data published elsewhere
    /// (`study:<name>`, no folder). When it is one of the plan's columns (same id), that cell is
    /// the diagonal and model k is scored on test fold k.
    public var dataset: DatasetVersionRef
    public var models: [ModelRef]

    public init(dataset: DatasetVersionRef, models: [ModelRef]) {
        self.dataset = dataset
        self.models = models
    }
}

extension MatrixPlan {
    /// Plans an evaluation-only matrix: every model of every row scored on every column, with
    /// the study's cell rule (model k on test fold k of its own dataset, every patch of the
    /// others), nothing trained. The models enter the plan (`models`), so a Slurm task or a
    /// later `collect` needs no catalog to find them.
    /// - Throws: `ExperimentError` for an empty list, a dataset listed twice, two models of one
    ///   row with the same fold, or a diagonal model whose fold the dataset does not define.
    public init(name: String, evaluating rows: [ExistingModelRow], testOn: [DatasetVersionRef], dihedral: Bool = true,
                threads: Int = 1, commandLine: [String] = []) throws {
        guard !rows.isEmpty, rows.allSatisfy({ !$0.models.isEmpty }) else { throw ExperimentError("no model to evaluate") }
        guard !testOn.isEmpty else { throw ExperimentError("no dataset to test on") }
        for list in [rows.map(\.dataset), testOn] {
            var seen = Set<String>()
            for dataset in list where !seen.insert(dataset.id).inserted {
                throw ExperimentError("is listed twice (do two sets of models name the same training data?)", subject: "dataset \(dataset.label)")
            }
        }
        var datasets = rows.map(\.dataset)
        for dataset in testOn where !datasets.contains(where: { $0.id == dataset.id }) { datasets.append(dataset) }

        var evaluationUnits: [EvaluateUnit] = []
        for row in rows {
            var folds: [Int: String] = [:]
            for model in row.models {
                if let other = folds.updateValue(model.id, forKey: model.card.fold) {
                    throw ExperimentError("models \(other) and \(model.id) are both fold \(model.card.fold); select one of them",
                                          subject: "models trained on \(row.dataset.name)")
                }
            }
            for model in row.models.sorted(by: { $0.card.fold < $1.card.fold }) {
                for test in testOn {
                    let scope: EvaluationScope = test.id == row.dataset.id ? .testFold(model.card.fold) : .wholeDataset
                    if let fold = scope.fold, let count = test.foldCount, fold >= count {
                        throw ExperimentError("is fold \(fold), but \(test.label) defines folds 0...\(count - 1)", subject: "model \(model.id)")
                    }
                    evaluationUnits.append(EvaluateUnit(modelID: model.id, trainDatasetID: row.dataset.id, fold: model.card.fold,
                                                        on: test, scope: scope, dihedral: dihedral, threads: threads))
                }
            }
        }
        let models = rows.flatMap { $0.models.sorted { $0.card.fold < $1.card.fold } }

        self.formatVersion = MatrixPlan.formatVersion
        self.kind = .evaluation
        self.name = name
        self.executor = .trainer
        self.folds = rows.map(\.models.count).max() ?? 0
        self.datasets = datasets
        self.rows = rows.map(\.dataset.id)
        self.columns = testOn.map(\.id)
        self.variants = [TrainingVariant(label: "as given", settings: TrainingSettings(epochs: 0, dihedral: dihedral, threads: threads))]
        self.trainUnits = []
        self.evaluationUnits = evaluationUnits
        self.models = models
        self.commandLine = commandLine
        self.hrtemVersion = hrtemBuildVersion
        self.id = String(stableHash(([ExperimentKind.evaluation.rawValue] + evaluationUnits.map(\.id)).joined(separator: "\n")).prefix(16))
    }

    /// A model the plan evaluates without training it (an evaluation-only plan's), by id.
    public func existingModel(id: String) -> ModelRef? { models?.first { $0.id == id } }
}

/// Which of a catalog's models an evaluation-only matrix scores, and the rows they make.
///
/// A selection is a comma-separated list of terms; a model is selected when any term matches:
/// - `all`: every model with weights; `imported` / `trained`: by origin;
/// - `trained-on:PATTERN`: models whose training dataset matches PATTERN (its name, its
///   version id, or `study:<name>` for an imported model; `*` and `?` are wildcards);
/// - anything else: a model id, or a pattern over ids (`UNet_2p2nm*`).
/// A term that matches no model is an error, so a typo is never an empty row.
public struct ModelSelection: Sendable {
    public var terms: [String]

    /// - Throws: `ExperimentError` for an empty selection.
    public init(parsing text: String) throws {
        terms = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !terms.isEmpty else { throw ExperimentError("is empty; give model ids, patterns, all, imported, trained or trained-on:DATASET", subject: "--models") }
    }

    /// One model of the catalog as the selection sees it.
    public struct Candidate: Sendable {
        public var model: ModelRef
        /// Where it was trained: a dataset version id, or `study:<name>` for a published model.
        public var trainedOn: String
        /// What people call that dataset (the recipe name, or the study's name).
        public var trainedOnName: String
        public var imported: Bool
        /// The publisher's facts of an imported model (material, size, dose, pixel scale).
        public var provenance: ModelProvenance?
    }

    /// The catalog's models that have weights, with what the selection matches on.
    /// - Throws: `FormatError` for a model row whose card cannot be read.
    public static func candidates(in catalog: CatalogStore) throws -> [Candidate] {
        var candidates: [Candidate] = []
        let store = CatalogResultStore(catalog: catalog)
        for record in try catalog.models() {
            guard let folder = record.checkpointPath, TrainedModel.isFinished(in: URL(fileURLWithPath: folder)) else { continue }
            let model = try store.modelRef(record), card = model.card
            let provenance = record.importedProvenance
            var name = card.datasetVersion
            if let provenance { name = provenance.dataset ?? provenance.sourceFile }
            else if !card.datasetFolder.isEmpty, let version = try? DatasetVersion.open(at: URL(fileURLWithPath: card.datasetFolder)) {
                name = version.info.name
            }
            candidates.append(Candidate(model: model, trainedOn: card.datasetVersion,
                                        trainedOnName: name, imported: provenance != nil, provenance: provenance))
        }
        return candidates
    }

    /// The candidates the selection names, in the catalog's order.
    /// - Throws: `ExperimentError` naming a term that matches nothing.
    public func select(from candidates: [Candidate]) throws -> [Candidate] {
        var chosen = Set<String>()
        for term in terms {
            let found = candidates.filter { matches(term, $0) }
            guard !found.isEmpty else {
                throw ExperimentError("matches none of the catalog's \(candidates.count) models with weights (see hrtem model list)",
                                      subject: "--models term \"\(term)\"")
            }
            chosen.formUnion(found.map(\.model.id))
        }
        return candidates.filter { chosen.contains($0.model.id) }
    }

    func matches(_ term: String, _ candidate: Candidate) -> Bool {
        switch term {
        case "all": return true
        case "imported": return candidate.imported
        case "trained": return !candidate.imported
        default:
            if term.hasPrefix("trained-on:") {
                let pattern = String(term.dropFirst("trained-on:".count))
                // A version id may be given by a prefix, as elsewhere (`NAME@PREFIX`).
                return [candidate.trainedOn, candidate.trainedOnName, "study:" + candidate.trainedOnName].contains { wildcardMatch(pattern, $0) }
                    || (!candidate.imported && pattern.count >= 6 && candidate.trainedOn.hasPrefix(pattern))
            }
            return wildcardMatch(term, candidate.model.id)
        }
    }
}

/// Whether `text` matches `pattern` in full, `*` standing for any run of characters and `?`
/// for one.
func wildcardMatch(_ pattern: String, _ text: String) -> Bool {
    let p = Array(pattern), t = Array(text)
    var pi = 0, ti = 0, star = -1, resume = 0
    while ti < t.count {
        if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) { pi += 1; ti += 1 }
        else if pi < p.count && p[pi] == "*" { star = pi; resume = ti; pi += 1 }
        else if star >= 0 { pi = star + 1; resume += 1; ti = resume }
        else { return false }
    }
    while pi < p.count && p[pi] == "*" { pi += 1 }
    return pi == p.count
}

extension DatasetResolution {
    /// Groups selected models into matrix rows by training dataset, in order of first appearance.
    ///
    /// A row trained on a local version is described like any plan dataset. A row of published
    /// models gets a stand-in (`study:<name>`, the publisher's facts as its axis labels) unless
    /// one of `columns` is that same data: a version imported from `<name>.h5` (`dataset
    /// import-h5`), or one `matches` names (`trained-on label -> column dataset name`). Then the
    /// row is that column, and the cell is the diagonal.
    /// - Throws: `ExperimentError` for a `matches` entry naming no selected row or no column.
    public static func rows(for selected: [ModelSelection.Candidate], columns: [DatasetVersionRef],
                            matches: [String: String] = [:], in dataFolder: DataFolder) throws -> [ExistingModelRow] {
        var order: [String] = []
        var groups: [String: [ModelSelection.Candidate]] = [:]
        for candidate in selected {
            if groups[candidate.trainedOn] == nil { order.append(candidate.trainedOn) }
            groups[candidate.trainedOn, default: []].append(candidate)
        }
        for (label, column) in matches {
            guard order.contains(label) || order.contains("study:" + label) else {
                throw ExperimentError("names no training dataset of the selected models (they are: \(order.joined(separator: ", ")))",
                                      subject: "--match \(label)=\(column)")
            }
            guard columns.contains(where: { $0.name == column || $0.id == column || $0.label == column }) else {
                throw ExperimentError("is not one of --datasets", subject: "--match \(label)=\(column)")
            }
        }
        let catalog = FileManager.default.fileExists(atPath: dataFolder.catalogFile.path) ? try CatalogStore(folder: dataFolder) : nil
        return try order.map { key in
            let members = groups[key]!
            let first = members[0]
            let explicit = matches[key] ?? matches[first.trainedOnName]
            if let explicit, let column = columns.first(where: { $0.name == explicit || $0.id == explicit || $0.label == explicit }) {
                return ExistingModelRow(dataset: column, models: members.map(\.model))
            }
            if let column = columns.first(where: { $0.id == key }) {
                return ExistingModelRow(dataset: column, models: members.map(\.model))
            }
            if first.imported, let column = try columns.first(where: { try importedStem(of: $0) == first.trainedOnName }) {
                return ExistingModelRow(dataset: column, models: members.map(\.model))
            }
            if !first.imported, !first.model.card.datasetFolder.isEmpty,
               let version = try? DatasetVersion.open(at: URL(fileURLWithPath: first.model.card.datasetFolder)) {
                return ExistingModelRow(dataset: try describe(version, catalog: catalog), models: members.map(\.model))
            }
            return ExistingModelRow(dataset: standIn(for: first, count: members.count), models: members.map(\.model))
        }
    }

    /// The stem of the HDF5 images file a version was imported from (`dataset import-h5`), or nil.
    static func importedStem(of column: DatasetVersionRef) throws -> String? {
        guard !column.folder.isEmpty, let version = try? DatasetVersion.open(at: URL(fileURLWithPath: column.folder)),
              version.info.frames.count == 1, let frame = version.info.frames.first, frame.session == "hdf5" else { return nil }
        return (frame.file as NSString).deletingPathExtension
    }

    /// A row dataset for models trained on data hrtem has no version of.
    static func standIn(for candidate: ModelSelection.Candidate, count: Int) -> DatasetVersionRef {
        var metadata: [MetadataEntry] = []
        if let p = candidate.provenance {
            func number(_ value: Double) -> String { value == value.rounded() && abs(value) < 1e9 ? String(Int(value)) : "\(value)" }
            if let material = p.material { metadata.append(MetadataEntry("material", material)) }
            if let size = p.sizeNM { metadata.append(MetadataEntry("size", number(size) + " nm")) }
            if let dose = p.dose { metadata.append(MetadataEntry("dose", number(dose) + " e/Å²")) }
            if let scale = p.pixelScaleNM { metadata.append(MetadataEntry("pixel scale", number(scale) + " nm/px")) }
        }
        metadata.append(MetadataEntry("models", "\(count) \(candidate.imported ? "imported" : "trained") fold model\(count == 1 ? "" : "s")"))
        let name = candidate.imported && candidate.trainedOnName.hasSuffix("_Images")
            ? String(candidate.trainedOnName.dropLast("_Images".count)) : candidate.trainedOnName
        return DatasetVersionRef(id: candidate.trainedOn, name: name, folder: "", foldCount: nil, metadata: metadata)
    }
}
