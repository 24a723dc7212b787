import Foundation
import GRDB

extension CatalogStore {
    /// Records a trained model, and the dataset version it was trained on if the catalog does not
    /// know it yet (a version folder given by path), in one transaction. A model with the same id
    /// is replaced: retraining into the same folder updates its card.
    public func registerModel(_ model: ModelRecord, datasetFolder: String?) throws {
        try dbQueue.write { db in try Self.registerModel(model, datasetFolder: datasetFolder, in: db) }
    }

    public static func registerModel(_ model: ModelRecord, datasetFolder: String?, in db: Database) throws {
        if let version = model.datasetVersion {
            try ensureDatasetVersion(version, folder: datasetFolder, in: db)
        }
        try model.save(db)
    }

    /// Records one evaluation, replacing an earlier one of the same (model, dataset version,
    /// scope), in one transaction. - Throws: when the model is not in the catalog.
    public func recordResult(_ result: ResultRecord, datasetFolder: String?) throws {
        try dbQueue.write { db in try Self.recordResult(result, datasetFolder: datasetFolder, in: db) }
    }

    public static func recordResult(_ result: ResultRecord, datasetFolder: String?, in db: Database) throws {
        try ensureDatasetVersion(result.datasetVersion, folder: datasetFolder, in: db)
        guard try ModelRecord.fetchOne(db, key: result.modelId) != nil else {
            throw DatasetError("model \(result.modelId) is not in the catalog: register it before its results")
        }
        try db.execute(sql: "DELETE FROM results WHERE model_id = ? AND dataset_version = ? AND scope = ?",
                       arguments: [result.modelId, result.datasetVersion, result.scope])
        var row = result
        row.id = nil
        try row.insert(db)
    }

    /// The model with this id, if registered.
    public func model(id: String) throws -> ModelRecord? {
        try dbQueue.read { db in try ModelRecord.fetchOne(db, key: id) }
    }

    /// Every registered model, by id.
    public func models() throws -> [ModelRecord] {
        try dbQueue.read { db in try ModelRecord.order(Column("id")).fetchAll(db) }
    }

    /// The results recorded for a model, oldest first.
    public func results(modelId: String) throws -> [ResultRecord] {
        try dbQueue.read { db in
            try ResultRecord.filter(Column("model_id") == modelId).order(Column("id")).fetchAll(db)
        }
    }

    /// Makes sure a dataset version row exists, so the foreign keys of models and results hold.
    static func ensureDatasetVersion(_ versionId: String, folder: String?, in db: Database) throws {
        try db.execute(sql: "INSERT OR IGNORE INTO dataset_versions (version_id, folder) VALUES (?, ?)",
                       arguments: [versionId, folder ?? ""])
    }
}
