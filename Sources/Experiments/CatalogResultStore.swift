import Catalog
import Foundation
import GRDB

/// Results in the catalog's `models` and `results` tables (schema of issue 2).
///
/// A model row: id = the training unit id, dataset_version, fold, seed, settings (canonical
/// JSON of the training settings and executor), checkpoint_path (the model folder), card (the
/// `ModelRef` as JSON). A result row: model_id, dataset_version (the test version), scope
/// (`all` or `fold:K`), the five metrics, and per_patch (the full `EvaluationMetrics` as JSON,
/// which round-trips exactly). A dataset version the catalog does not know yet (a version folder
/// given by path) is registered with its id and folder so the foreign keys hold.
/// Each record is one transaction.
public struct CatalogResultStore: ResultStore {
    public let catalog: CatalogStore

    public init(catalog: CatalogStore) { self.catalog = catalog }

    static func scope(_ scope: EvaluationScope) -> String { scope.fold.map { "fold:\($0)" } ?? "all" }

    public func model(for unit: TrainUnit) throws -> ModelRef? {
        guard let row = try catalog.dbQueue.read({ try ModelRecord.fetchOne($0, key: unit.id) }),
              let card = row.card else { return nil }
        return try? JSONDecoder().decode(ModelRef.self, from: Data(card.utf8))
    }

    public func record(_ model: ModelRef, for unit: TrainUnit) throws {
        let record = ModelRecord(id: unit.id, datasetVersion: unit.dataset.id, fold: unit.fold,
                                 seed: unit.settings.seed.map { Int64(bitPattern: $0) },
                                 settings: canonicalJSON(unit.settings), checkpointPath: model.folder,
                                 card: canonicalJSON(model))
        try catalog.registerModel(record, datasetFolder: unit.dataset.folder)
    }

    public func metrics(for unit: EvaluateUnit) throws -> EvaluationMetrics? {
        let row = try catalog.dbQueue.read { db in
            try ResultRecord.filter(Column("model_id") == unit.trainUnitID && Column("dataset_version") == unit.testDataset.id
                                    && Column("scope") == Self.scope(unit.scope)).fetchOne(db)
        }
        guard let text = row?.perPatch else { return nil }
        return try? JSONDecoder().decode(EvaluationMetrics.self, from: Data(text.utf8))
    }

    public func record(_ metrics: EvaluationMetrics, for unit: EvaluateUnit) throws {
        let record = ResultRecord(modelId: unit.trainUnitID, datasetVersion: unit.testDataset.id, scope: Self.scope(unit.scope),
                                  hardDice: metrics.hardDice, softDice: metrics.softDice, loss: metrics.loss,
                                  fpRate: metrics.falsePositiveRate, fnRate: metrics.falseNegativeRate,
                                  perPatch: canonicalJSON(metrics))
        do {
            try catalog.recordResult(record, datasetFolder: unit.testDataset.folder)
        } catch let error as DatasetError {
            throw ExperimentError("\(unit.label): \(error.description)")
        }
    }
}
