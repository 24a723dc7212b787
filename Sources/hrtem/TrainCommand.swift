import ArgumentParser
import Catalog
import Experiments
import Foundation
import Micrograph
import Segmentation

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the study's residual U-Net on one fold of a dataset version (CPU).",
        discussion: """
        Writes model.safetensors (best validation loss, PyTorch state_dict names), model.json,
        training.csv and checkpoint.safetensors into --out (default: <data>/models/<model id>,
        the id the matrix gives the same fold model, so a matrix reuses it). Records the model and
        its test-fold scores in the catalog when the data folder has one. Running the same command
        again after an interruption continues from the checkpoint.
        Example: hrtem train au-2nm --fold 0 --epochs 250 --threads 2
        """)

    @OptionGroup var data: DataOptions

    @Argument(help: "Dataset version: NAME[@VERSION] or a version folder.")
    var dataset: String

    @Option(help: "Fold to train (its test block is held out).") var fold: Int
    @Option(help: "Seed (default: the fold's seed from folds.json).") var seed: UInt64?
    @OptionGroup var training: TrainingOptions
    @Option(help: "Output folder.") var out: String?

    func validate() throws {
        try training.check()
        if fold < 0 { throw ValidationError("--fold must be 0 or more, got \(fold)") }
    }

    func run() throws {
        let folder = data.folder
        let version = try DatasetResolution.resolve(dataset, in: folder)
        let unit = try TrainUnit(dataset: version, fold: fold, settings: training.settings(seed: seed, defaultThreads: 2),
                                 executor: .trainer)
        let interactive = isatty(STDERR_FILENO) != 0
        let executor = TrainerExecutor(dataFolder: folder) { _, progress in
            Self.show(progress, interactive: interactive)
        }
        let model = try executor.train(unit, into: out.map(MatrixCLI.absoluteURL) ?? executor.modelFolder(unit))
        print("model \(model.id): \(model.folder)")
        let ownFold = EvaluateUnit(of: unit, on: version, scope: .testFold(fold), dihedral: unit.settings.dihedral)
        let evaluation = try executor.evaluate(ownFold, model: model)
        if let catalog = try ModelResults.catalog(of: folder) {
            try catalog.record(model, for: unit)
            try catalog.record(evaluation, for: ownFold)
            print("recorded in the catalog as model \(model.id)")
        }
        print(String(format: "best epoch %d, validation loss %.5f", model.card.bestEpoch, model.card.bestValidationLoss))
        for attempt in model.card.collapsedAttempts ?? [] {
            print("seed \(attempt.seed) collapsed (\(attempt.collapse.reason)); retrained with seed \(model.card.seed)")
        }
        if let collapse = model.card.collapse {
            MatrixCLI.printError("warning: the model collapsed: \(collapse.reason). It is not a result; try --on-collapse retry.")
        }
        print("test (fold \(fold)): " + ModelResults.line(evaluation.metrics))
    }

    /// The live progress line on stderr: rewritten in place on a terminal, one line per epoch.
    static func show(_ progress: TrainingProgress, interactive: Bool) {
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
}

/// What `train` and `evaluate` share with each other and with the matrix's recording.
enum ModelResults {
    /// The catalog's result store, when the data folder has a catalog.
    static func catalog(of folder: DataFolder) throws -> CatalogResultStore? {
        guard FileManager.default.fileExists(atPath: folder.catalogFile.path) else { return nil }
        return CatalogResultStore(catalog: try CatalogStore(folder: folder))
    }

    static func line(_ metrics: Metrics) -> String {
        String(format: "%d patches, hard Dice %.4f  soft Dice %.4f  FP rate %.4f  FN rate %.4f  loss %.5f",
               metrics.patches, metrics.hardDice, metrics.softDice, metrics.falsePositiveRate, metrics.falseNegativeRate,
               metrics.loss)
    }
}
