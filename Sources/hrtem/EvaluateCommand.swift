import ArgumentParser
import Catalog
import Experiments
import Foundation
import Micrograph
import Segmentation

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Score a trained model on a dataset version: hard/soft Dice per patch, FP/FN rates, loss.",
        discussion: """
        MODEL is a model folder written by `hrtem train` or the matrix (model.safetensors + model.json).
        Without --fold or --all, the model's own test fold is used when the dataset is the one it
        was trained on, else every patch. Dihedral x8 unless --no-dihedral. The scores are
        recorded in the catalog when the model is registered there.
        Example: hrtem evaluate hrtem-data/models/3f9c0a1b2c3d ag-5nm --all
        """)

    @OptionGroup var data: DataOptions
    @Argument(help: "Model folder.") var model: String
    @Argument(help: "Dataset version: NAME[@VERSION] or a version folder.") var dataset: String
    @Option(help: "Score this fold's test patches.") var fold: Int?
    @Flag(help: "Score every patch of the version.") var all = false
    @Flag(inversion: .prefixedNo, help: "Score each patch under all eight symmetries.") var dihedral = true
    @Option(help: "Threads.") var threads = 2
    @Flag(help: "Print the metrics as JSON.") var json = false

    func validate() throws {
        if fold != nil && all { throw ValidationError("give --fold or --all, not both") }
        if threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func run() throws {
        let folder = data.folder
        let modelFolder = MatrixCLI.absoluteURL(model)
        let card = try ModelCard.read(from: modelFolder)
        let catalog = try ModelResults.catalog(of: folder)
        // The id the catalog knows the folder by (an imported model's is its file's name); else
        // its training unit's, which its card determines.
        let registered = try catalog?.catalog.model(folder: modelFolder.path)
        let modelID = try registered?.id ?? MatrixPlan.trainUnitID(datasetID: card.datasetVersion, fold: card.fold,
                                                                   settings: card.configuration, executor: .trainer)
        let version = try DatasetResolution.resolve(dataset, in: folder)
        let scope: EvaluationScope
        if let fold { scope = .testFold(fold) }
        else if !all && version.id == card.datasetVersion { scope = .testFold(card.fold) }
        else { scope = .wholeDataset }
        let unit = EvaluateUnit(modelID: modelID, trainDatasetID: card.datasetVersion, fold: card.fold, on: version,
                                scope: scope, dihedral: dihedral, threads: threads)
        let evaluation = try TrainerExecutor(dataFolder: folder)
            .evaluate(unit, model: ModelRef(id: modelID, folder: modelFolder.path, card: card))
        if let catalog, registered != nil { try catalog.record(evaluation, for: unit) }
        if json {
            print(String(decoding: try CanonicalJSON.file(evaluation.metrics), as: UTF8.self), terminator: "")
        } else {
            print("\(version.label), \(scope == .wholeDataset ? "all patches" : "fold \(scope.fold!) test"): " + ModelResults.line(evaluation.metrics))
            if let particles = evaluation.particles {
                print("particles (IoU >= 0.5, no symmetries): \(particles.detected) detected, \(particles.missed) missed, "
                      + "\(particles.spurious) spurious, particle F1 \(String(format: "%.4f", particles.f1))"
                      + (particles.meanDiameterDifference.map { String(format: ", diameter bias %+.3f %@", $0, particles.unit) } ?? ""))
            }
            if registered != nil { print("recorded in the catalog for model \(modelID)") }
        }
    }
}
