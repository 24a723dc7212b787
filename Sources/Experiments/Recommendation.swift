import Catalog
import Foundation
import GRDB
import Micrograph

/// The acquisition conditions a model's fitness depends on most (the study's two axes).
public struct AcquisitionConditions: Codable, Hashable, Sendable, CustomStringConvertible {
    /// Total dose, e/A^2.
    public var dose: Double?
    /// nm/px.
    public var pixelScale: Double?

    public init(dose: Double?, pixelScale: Double?) {
        self.dose = dose.flatMap { $0 > 0 && $0.isFinite ? $0 : nil }
        self.pixelScale = pixelScale.flatMap { $0 > 0 && $0.isFinite ? $0 : nil }
    }

    /// The geometric means of the frames' doses and pixel scales (the distance is logarithmic).
    public init(frames: [FrameRecord]) {
        func geometricMean(_ values: [Double]) -> Double? {
            let positive = values.filter { $0 > 0 && $0.isFinite }
            return positive.isEmpty ? nil : exp(positive.reduce(0) { $0 + log($1) } / Double(positive.count))
        }
        self.init(dose: geometricMean(frames.compactMap(\.dose)), pixelScale: geometricMean(frames.compactMap(\.pixelScaleNm)))
    }

    public var description: String {
        [dose.map { String(format: "dose %.4g e/A^2", $0) }, pixelScale.map { String(format: "pixel scale %.4g nm/px", $0) }]
            .compactMap { $0 }.joined(separator: ", ").nonEmpty ?? "no dose or pixel scale known"
    }

    /// The distance the recommendation ranks by:
    /// `sqrt((log2(s1 / s2))^2 + (log10(d1 / d2))^2)` with s the pixel scales and d the doses, so
    /// a factor of 2 in pixel scale or of 10 in dose is one unit (the study's series span about
    /// 2x in scale and 10x in dose). A field unknown on either side adds nothing; nil when no
    /// field is known on both sides.
    public func distance(to other: AcquisitionConditions) -> Double? {
        var sum = 0.0, terms = 0
        if let a = pixelScale, let b = other.pixelScale { sum += pow(log2(a / b), 2); terms += 1 }
        if let a = dose, let b = other.dose { sum += pow(log10(a / b), 2); terms += 1 }
        return terms == 0 ? nil : sum.squareRoot()
    }

    /// Within this distance a tested dataset counts as "near" the frame.
    public static let nearDistance = 0.5
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}

/// One recorded score: a fold model, what it was trained on, and its hard Dice on a tested dataset.
public struct ModelEvidence: Codable, Hashable, Sendable {
    public var modelID: String
    public var modelFolder: String?
    public var trainDatasetID: String
    public var trainDatasetName: String
    public var testDatasetID: String
    public var testDatasetName: String
    public var testConditions: AcquisitionConditions
    public var hardDice: Double

    public init(modelID: String, modelFolder: String?, trainDatasetID: String, trainDatasetName: String,
                testDatasetID: String, testDatasetName: String, testConditions: AcquisitionConditions, hardDice: Double) {
        self.modelID = modelID; self.modelFolder = modelFolder
        self.trainDatasetID = trainDatasetID; self.trainDatasetName = trainDatasetName
        self.testDatasetID = testDatasetID; self.testDatasetName = testDatasetName
        self.testConditions = testConditions; self.hardDice = hardDice
    }
}

/// The models trained on one dataset, judged for a frame by their scores on the tested dataset
/// whose conditions are nearest the frame's.
public struct RankedModels: Codable, Hashable, Sendable {
    public var trainDatasetID: String
    public var trainDatasetName: String
    /// The fold models (ids), and their folders where recorded.
    public var modelIDs: [String]
    public var modelFolders: [String]
    public var nearestTestDatasetName: String
    public var nearestTestConditions: AcquisitionConditions
    public var distance: Double
    /// Mean and population standard deviation of the fold models' hard Dice there.
    public var expectedHardDice: Double
    public var hardDiceSpread: Double
    public var isNear: Bool
}

/// A ranking of the catalog's models for a frame's conditions.
public struct Recommendation: Codable, Hashable, Sendable {
    public var conditions: AcquisitionConditions
    /// Near choices first (distance <= `AcquisitionConditions.nearDistance`), each group by
    /// expected hard Dice, best first; then by distance.
    public var ranking: [RankedModels]
    /// Set when no model was tested near the frame's conditions.
    public var warning: String?

    /// Ranks the training datasets behind `evidence` for `conditions`.
    public init(conditions: AcquisitionConditions, evidence: [ModelEvidence]) {
        self.conditions = conditions
        var ranking = [RankedModels]()
        for trainID in Set(evidence.map(\.trainDatasetID)).sorted() {
            let scores = evidence.filter { $0.trainDatasetID == trainID }
            // The tested dataset nearest the frame; ties by name, so the choice is stable.
            let tested = Set(scores.map(\.testDatasetID)).compactMap { testID -> (String, Double)? in
                guard let sample = scores.first(where: { $0.testDatasetID == testID }),
                      let distance = conditions.distance(to: sample.testConditions) else { return nil }
                return (testID, distance)
            }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }
            guard let (nearestID, distance) = tested.first else { continue }
            let there = scores.filter { $0.testDatasetID == nearestID }.sorted { $0.modelID < $1.modelID }
            let dice = there.map(\.hardDice)
            let mean = dice.reduce(0, +) / Double(dice.count)
            let spread = (dice.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(dice.count)).squareRoot()
            let models = Array(Set(scores.map(\.modelID))).sorted()
            ranking.append(RankedModels(
                trainDatasetID: trainID, trainDatasetName: there[0].trainDatasetName, modelIDs: models,
                modelFolders: models.compactMap { id in scores.first { $0.modelID == id }?.modelFolder },
                nearestTestDatasetName: there[0].testDatasetName, nearestTestConditions: there[0].testConditions,
                distance: distance, expectedHardDice: mean, hardDiceSpread: spread,
                isNear: distance <= AcquisitionConditions.nearDistance))
        }
        ranking.sort {
            if $0.isNear != $1.isNear { return $0.isNear }
            if $0.isNear { return ($0.expectedHardDice, -$0.distance, $1.trainDatasetName) > ($1.expectedHardDice, -$1.distance, $0.trainDatasetName) }
            return ($0.distance, -$0.expectedHardDice, $0.trainDatasetName) < ($1.distance, -$1.expectedHardDice, $1.trainDatasetName)
        }
        self.ranking = ranking
        if evidence.isEmpty {
            warning = "no model has recorded results in the catalog: run hrtem matrix (or hrtem evaluate on registered models) first"
        } else if ranking.isEmpty {
            warning = "no tested dataset shares a known dose or pixel scale with the frame (\(conditions)): nothing to compare"
        } else if !ranking.contains(where: \.isNear) {
            let nearest = ranking.min { $0.distance < $1.distance }!
            warning = String(format: "no model was tested near these conditions (%@): the nearest tested dataset, %@ (%@), is %.2f away "
                             + "(near means <= %.2f); expect the scores below not to hold", conditions.description,
                             nearest.nearestTestDatasetName, nearest.nearestTestConditions.description, nearest.distance,
                             AcquisitionConditions.nearDistance)
        }
    }
}

extension Recommendation {
    /// The evidence the catalog holds: every registered model's recorded results, with the
    /// conditions of each tested dataset version (its frames' catalog rows) and the name of the
    /// version it was trained on. Versions whose folder is gone are skipped; a relative folder
    /// is under `dataFolder`.
    public static func evidence(in catalog: CatalogStore, dataFolder: DataFolder) throws -> [ModelEvidence] {
        let versions = try catalog.dbQueue.read { db in try DatasetVersionRecord.fetchAll(db) }
        var described = [String: (name: String, conditions: AcquisitionConditions)]()
        for record in versions {
            let url = record.folder.hasPrefix("/") ? URL(fileURLWithPath: record.folder)
                                                   : dataFolder.url.appendingPathComponent(record.folder)
            guard let version = try? DatasetVersion.open(at: url) else { continue }
            let frames = try version.info.frames.compactMap { try catalog.frame(session: $0.session, file: $0.file) }
            described[record.versionId] = (version.info.name, AcquisitionConditions(frames: frames))
        }
        var evidence = [ModelEvidence]()
        for model in try catalog.models() {
            guard let trained = model.datasetVersion, let trainedOn = described[trained] else { continue }
            for result in try catalog.results(modelId: model.id) {
                guard let dice = result.hardDice, let tested = described[result.datasetVersion] else { continue }
                evidence.append(ModelEvidence(modelID: model.id, modelFolder: model.checkpointPath, trainDatasetID: trained,
                                              trainDatasetName: trainedOn.name, testDatasetID: result.datasetVersion,
                                              testDatasetName: tested.name, testConditions: tested.conditions, hardDice: dice))
            }
        }
        return evidence
    }

    /// The ranking as a table for a terminal.
    public var text: String {
        var out = "frame conditions: \(conditions)\n"
        out += "distance: sqrt(log2(pixel scale ratio)^2 + log10(dose ratio)^2); near <= \(AcquisitionConditions.nearDistance)\n"
        if let warning { out += "WARNING: \(warning)\n" }
        for (index, choice) in ranking.enumerated() {
            out += String(format: "%d. %@: expected hard Dice %.4f ± %.4f (%d models) on %@ (%@), distance %.2f%@\n",
                          index + 1, choice.trainDatasetName, choice.expectedHardDice, choice.hardDiceSpread, choice.modelIDs.count,
                          choice.nearestTestDatasetName, choice.nearestTestConditions.description, choice.distance,
                          choice.isNear ? "" : " (far)")
        }
        return out
    }
}
