import ArgumentParser
import Catalog
import Foundation
import Micrograph
import Segmentation

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Score a trained model on a dataset version: hard/soft Dice per patch, FP/FN rates, loss.",
        discussion: """
        MODEL is a model folder written by `hrtem train` (model.safetensors + model.json).
        Without --fold or --all, the model's own test fold is used when the dataset is the one it
        was trained on, else every patch. Dihedral x8 unless --no-dihedral.
        Example: hrtem evaluate hrtem-data/models/3f9c-fold0-seed962 hrtem-data/datasets/ag-5nm/81d2 --all
        """)

    @OptionGroup var data: DataOptions
    @Argument(help: "Model folder.") var model: String
    @Argument(help: "Dataset version: a version folder, or NAME[@VERSION] under the data folder.") var dataset: String
    @Option(help: "Score this fold's test patches.") var fold: Int?
    @Flag(help: "Score every patch of the version.") var all = false
    @Flag(name: .customLong("no-dihedral"), help: "Score each patch once instead of under all eight symmetries.") var noDihedral = false
    @Option(help: "Threads.") var threads = 2
    @Flag(help: "Print the metrics as JSON.") var json = false

    func validate() throws {
        if fold != nil && all { throw ValidationError("give --fold or --all, not both") }
    }

    func run() throws {
        let trained = try TrainedModel.load(from: URL(fileURLWithPath: model))
        trained.network.compute = ComputeSettings(threads: threads)
        let folder = try resolveDatasetFolder(dataset, data: data.folder)
        let patches = try PatchDataset.load(from: folder)
        let rows: [Int]
        let scope: String
        let catalogScope: String
        if let fold {
            rows = try patches.fold(fold).test
            scope = "fold \(fold) test"
            catalogScope = "fold:\(fold)"
        } else if !all, patches.versionID == trained.card.datasetVersion, let own = try? patches.fold(trained.card.fold) {
            rows = own.test
            scope = "fold \(trained.card.fold) test (the model's own)"
            catalogScope = "fold:\(trained.card.fold)"
        } else {
            rows = Array(0..<patches.count)
            scope = "all patches"
            catalogScope = "all"
        }
        let metrics = evaluate(network: trained.network, dataset: patches, rows: rows, dihedral: !noDihedral)
        let modelId = trained.folder.lastPathComponent
        var recorded = false
        if FileManager.default.fileExists(atPath: data.folder.catalogFile.path) {
            let store = try CatalogStore(file: data.folder.catalogFile)
            if try store.model(id: modelId) != nil {
                try recordResultInCatalog(metrics, modelId: modelId, datasetVersion: patches.versionID,
                                          scope: catalogScope, datasetFolder: folder, store: store)
                recorded = true
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(metrics), as: UTF8.self))
        } else {
            print("\(patches.versionID), \(scope): \(metrics.patches) patches")
            print(String(format: "hard Dice %.4f  soft Dice %.4f  FP rate %.4f  FN rate %.4f  loss %.5f",
                         metrics.hardDice, metrics.softDice, metrics.falsePositiveRate, metrics.falseNegativeRate, metrics.loss))
            if recorded { print("recorded in the catalog for model \(modelId)") }
        }
    }
}
