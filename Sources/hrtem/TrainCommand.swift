import ArgumentParser
import Catalog
import Foundation
import Micrograph
import Segmentation

/// Where a DATASET[@VERSION] argument points: an existing version folder, else the catalog's
/// NAME (latest version) or NAME@VERSION (unique id prefix), else `<data>/datasets/NAME/VERSION`.
func resolveDatasetFolder(_ argument: String, data: DataFolder) throws -> URL {
    let direct = URL(fileURLWithPath: argument)
    if FileManager.default.fileExists(atPath: direct.appendingPathComponent("folds.json").path) { return direct }
    if FileManager.default.fileExists(atPath: data.catalogFile.path) {
        let store = try CatalogStore(file: data.catalogFile)
        if let version = try? DatasetRegistry.resolve(argument, in: store, dataFolder: data) { return version.folder }
    }
    let parts = argument.split(separator: "@", maxSplits: 1).map(String.init)
    let named = data.datasetsFolder.appendingPathComponent(parts[0])
    if parts.count == 2 {
        let version = named.appendingPathComponent(parts[1])
        if FileManager.default.fileExists(atPath: version.appendingPathComponent("folds.json").path) { return version }
    } else if FileManager.default.fileExists(atPath: named.appendingPathComponent("folds.json").path) {
        return named
    } else if let versions = try? FileManager.default.contentsOfDirectory(atPath: named.path)
                .filter({ FileManager.default.fileExists(atPath: named.appendingPathComponent($0).appendingPathComponent("folds.json").path) }),
              versions.count == 1 {
        return named.appendingPathComponent(versions[0])
    }
    throw ValidationError("no dataset version '\(argument)': not a folder with folds.json, nor under \(data.datasetsFolder.path)")
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the study's residual U-Net on one fold of a dataset version (CPU).",
        discussion: """
        Writes model.safetensors (best validation loss, PyTorch state_dict names), model.json,
        training.csv and checkpoint.safetensors into --out (default: <data>/models/<version>-fold<K>-seed<S>).
        Running the same command again after an interruption continues from the checkpoint.
        Example: hrtem train hrtem-data/datasets/au-2nm/3f9c... --fold 0 --epochs 250 --threads 2
        """)

    @OptionGroup var data: DataOptions

    @Argument(help: "Dataset version: a version folder, or NAME[@VERSION] under the data folder.")
    var dataset: String

    @Option(help: "Fold to train (its test block is held out).") var fold: Int
    @Option(help: "Epochs.") var epochs = 250
    @Option(help: "Batch size.") var batch = 32
    @Option(name: .customLong("lr"), help: "Adam learning rate.") var learningRate = 1e-4
    @Option(help: "Seed (default: the fold's seed from folds.json).") var seed: UInt64?
    @Option(help: "Gaussian noise augmentation with this fixed rho (image std units).") var noise: Double?
    @Option(name: .customLong("noise-max"), help: "Gaussian noise augmentation with rho ~ U(0, RHO) per sample.") var noiseMax: Double?
    @Option(help: "Online flip + rotation augmentation: on or off.") var rotate = "on"
    @Option(help: "Dihedral x8 expansion of every set: on or off.") var dihedral = "on"
    @Option(help: "Threads.") var threads = 2
    @Option(help: "Encoder widths, comma separated (the study's: 4,8,16,32).") var widths = "4,8,16,32"
    @Option(help: "Bottleneck width (the study's: 64).") var bottleneck = 64
    @Option(help: "Output folder.") var out: String?

    func validate() throws {
        if noise != nil && noiseMax != nil { throw ValidationError("give --noise or --noise-max, not both") }
        if !["on", "off"].contains(rotate) { throw ValidationError("--rotate takes on or off") }
        if !["on", "off"].contains(dihedral) { throw ValidationError("--dihedral takes on or off") }
        if epochs < 1 || batch < 1 || threads < 1 { throw ValidationError("--epochs, --batch and --threads must be at least 1") }
        if learningRate <= 0 { throw ValidationError("--lr must be positive") }
        if (noise ?? 0) < 0 || (noiseMax ?? 0) < 0 { throw ValidationError("noise rho must not be negative") }
        if parsedWidths == nil { throw ValidationError("--widths takes positive integers separated by commas, e.g. 4,8,16,32") }
    }

    var parsedWidths: [Int]? {
        let values = widths.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return values.map { $0! }
    }

    func run() throws {
        let folder = try resolveDatasetFolder(dataset, data: data.folder)
        let patches = try PatchDataset.load(from: folder)
        var config = TrainingConfiguration()
        config.architecture = UNetArchitecture(widths: parsedWidths!, bottleneckWidth: bottleneck)
        config.epochs = epochs
        config.batchSize = batch
        config.learningRate = learningRate
        config.seed = seed
        config.noise = noise.map { .fixed($0) } ?? noiseMax.map { .uniform($0) } ?? NoiseAugmentation.none
        config.rotate = rotate == "on"
        config.dihedral = dihedral == "on"
        config.threads = threads
        let foldSeed = try patches.fold(fold).seed
        let output = out.map { URL(fileURLWithPath: $0) }
            ?? data.folder.modelsFolder.appendingPathComponent("\(patches.versionID)-fold\(fold)-seed\(seed ?? UInt64(foldSeed))")
        let interactive = isatty(STDERR_FILENO) != 0
        let model = try train(dataset: patches, fold: fold, config: config, output: output) { progress in
            var line = String(format: "epoch %d/%d  batch %d/%d  loss %.4f  dice %.4f  %.1f s",
                              progress.epoch, progress.epochs, progress.batch, progress.batches,
                              progress.trainingLoss, progress.trainingDice, progress.secondsThisEpoch)
            if let validation = progress.validation {
                line += String(format: "  val loss %.4f  val dice %.4f", validation.loss, validation.hardDice)
            }
            if let perEpoch = progress.secondsPerEpoch { line += String(format: "  %.1f s/epoch", perEpoch) }
            if let left = progress.estimatedSecondsLeft { line += String(format: "  ETA %.0f s", left) }
            if progress.epochFinished {
                FileHandle.standardError.write(Data(((interactive ? "\r\u{1B}[K" : "") + line + "\n").utf8))
            } else if interactive {
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            }
        }
        print("model: \(model.folder.path)")
        if try registerInCatalog(model: model, settings: config, datasetFolder: folder, data: data.folder) {
            print("registered in the catalog as model \(model.folder.lastPathComponent)")
        }
        print(String(format: "best epoch %d, validation loss %.5f", model.card.bestEpoch, model.card.bestValidationLoss))
        if let test = model.card.test {
            print(String(format: "test (fold %d, %d patches): hard Dice %.4f  soft Dice %.4f  FP rate %.4f  FN rate %.4f  loss %.5f",
                         fold, test.patches, test.hardDice, test.softDice, test.falsePositiveRate, test.falseNegativeRate, test.loss))
        }
    }
}

/// Records a trained model (id = its folder name) and its test-fold metrics in the catalog's
/// `models` and `results` tables, when the data folder has a catalog. Returns whether it did.
func registerInCatalog(model: TrainedModel, settings: TrainingConfiguration, datasetFolder: URL,
                       data: DataFolder) throws -> Bool {
    guard FileManager.default.fileExists(atPath: data.catalogFile.path) else { return false }
    let store = try CatalogStore(file: data.catalogFile)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let card = String(decoding: try encoder.encode(model.card), as: UTF8.self)
    let record = ModelRecord(id: model.folder.lastPathComponent, datasetVersion: model.card.datasetVersion,
                             fold: model.card.fold, seed: Int64(bitPattern: model.card.seed),
                             settings: String(decoding: try encoder.encode(settings), as: UTF8.self),
                             checkpointPath: model.folder.path, card: card)
    try store.registerModel(record, datasetFolder: datasetFolder.path)
    if let test = model.card.test {
        try recordResultInCatalog(test, modelId: record.id, datasetVersion: model.card.datasetVersion,
                                  scope: "fold:\(model.card.fold)", datasetFolder: datasetFolder, store: store)
    }
    return true
}

func recordResultInCatalog(_ metrics: Metrics, modelId: String, datasetVersion: String, scope: String,
                           datasetFolder: URL, store: CatalogStore) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let result = ResultRecord(modelId: modelId, datasetVersion: datasetVersion, scope: scope,
                              hardDice: metrics.hardDice, softDice: metrics.softDice, loss: metrics.loss,
                              fpRate: metrics.falsePositiveRate, fnRate: metrics.falseNegativeRate,
                              perPatch: String(decoding: try encoder.encode(metrics), as: UTF8.self))
    try store.recordResult(result, datasetFolder: datasetFolder.path)
}
