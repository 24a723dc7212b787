import Catalog
import Foundation
import GRDB
import Micrograph
import Segmentation

/// Results in the catalog's `models` and `results` tables.
///
/// A model row: id = the training unit id, dataset_version, fold, seed, settings (canonical
/// JSON of the unit's `TrainingSettings`), checkpoint_path (the model folder), card (the
/// `ModelCard`, canonical JSON). A result row: model_id, dataset_version (the test version),
/// scope (`all` or `fold:K`), the five metrics, and per_patch (the whole `Evaluation` as JSON,
/// which round-trips exactly). A dataset version the catalog does not know yet (a version
/// folder given by path) is registered with its id and folder so the foreign keys hold.
/// Each record is one transaction. `hrtem train`, `hrtem evaluate` and the matrix all record
/// through here.
extension ModelRecord {
    /// The `ModelCard` the row's card column holds; nil for a row written by an earlier release
    /// (its card is then its folder's `model.json`).
    public var storedCard: ModelCard? { card.flatMap { try? JSONDecoder().decode(ModelCard.self, from: Data($0.utf8)) } }

    /// What the publisher says of an imported model (the row's settings column); nil for a model
    /// trained here, whose settings are its `TrainingSettings`.
    public var importedProvenance: ModelProvenance? {
        settings.flatMap { try? JSONDecoder().decode(ModelProvenance.self, from: Data($0.utf8)) }
    }
}

public struct CatalogResultStore: ResultStore {
    public let catalog: CatalogStore

    public init(catalog: CatalogStore) { self.catalog = catalog }

    static func scope(_ scope: EvaluationScope) -> String { scope.fold.map { "fold:\($0)" } ?? "all" }

    /// The recorded model of a unit. A row whose card is not a `ModelCard` (written by an
    /// earlier hrtem) is read through its folder's `model.json`, the card's own file.
    /// - Throws: `FormatError` when neither holds a readable card.
    public func model(for unit: TrainUnit) throws -> ModelRef? {
        guard let row = try catalog.dbQueue.read({ try ModelRecord.fetchOne($0, key: unit.id) }) else { return nil }
        return try modelRef(row)
    }

    /// A model row as a `ModelRef`: its card from the row, else from its folder's `model.json`.
    /// - Throws: `FormatError` when neither holds a readable card.
    public func modelRef(_ row: ModelRecord) throws -> ModelRef {
        if let card = row.storedCard { return ModelRef(id: row.id, folder: row.checkpointPath ?? "", card: card) }
        guard let folder = row.checkpointPath else {
            throw FormatError(file: catalog.fileURL?.path ?? "catalog", "model \(row.id) has neither a card nor a folder")
        }
        return ModelRef(id: row.id, folder: folder, card: try ModelCard.read(from: URL(fileURLWithPath: folder)))
    }

    public func record(_ model: ModelRef, for unit: TrainUnit) throws {
        let record = ModelRecord(id: unit.id, datasetVersion: unit.dataset.id, fold: unit.fold,
                                 seed: Int64(bitPattern: model.card.seed),
                                 settings: try CanonicalJSON.compactString(unit.settings), checkpointPath: model.folder,
                                 card: try CanonicalJSON.compactString(model.card))
        try catalog.registerModel(record, datasetFolder: unit.dataset.folder)
    }

    public func evaluation(for unit: EvaluateUnit) throws -> Evaluation? {
        let row = try catalog.dbQueue.read { db in
            try ResultRecord.filter(Column("model_id") == unit.trainUnitID && Column("dataset_version") == unit.testDataset.id
                                    && Column("scope") == Self.scope(unit.scope)).fetchOne(db)
        }
        guard let row, let text = row.perPatch else { return nil }
        let data = Data(text.utf8)
        if let evaluation = try? JSONDecoder().decode(Evaluation.self, from: data) { return evaluation }
        // Earlier releases stored the metrics flat, with the overlays and seconds beside them.
        struct Flat: Decodable { var sampleOverlays: [String]?; var seconds: Double? }
        do {
            let flat = try JSONDecoder().decode(Flat.self, from: data)
            return Evaluation(metrics: try JSONDecoder().decode(Metrics.self, from: data),
                              sampleOverlays: flat.sampleOverlays, seconds: flat.seconds)
        } catch {
            throw FormatError(file: catalog.fileURL?.path ?? "catalog",
                              "result \(row.id.map(String.init) ?? "?") of model \(unit.trainUnitID): per_patch is not an evaluation: \(describeDecodingError(error))")
        }
    }

    public func record(_ evaluation: Evaluation, for unit: EvaluateUnit) throws {
        let metrics = evaluation.metrics
        let record = ResultRecord(modelId: unit.trainUnitID, datasetVersion: unit.testDataset.id, scope: Self.scope(unit.scope),
                                  hardDice: metrics.hardDice, softDice: metrics.softDice, loss: metrics.loss,
                                  fpRate: metrics.falsePositiveRate, fnRate: metrics.falseNegativeRate,
                                  perPatch: try CanonicalJSON.compactString(evaluation))
        do {
            try catalog.recordResult(record, datasetFolder: unit.testDataset.folder)
        } catch let error as DatasetError {
            throw ExperimentError(error.description, subject: unit.label)
        }
    }
}
