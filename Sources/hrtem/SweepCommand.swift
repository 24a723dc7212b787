import ArgumentParser
import Experiments
import Foundation

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Sweep a training parameter and see how scores on other datasets follow.",
        subcommands: [Noise.self]
    )

    struct Noise: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "noise",
            abstract: "Gaussian-noise augmentation sweep (the study's Fig. 5): train on one dataset at several noise levels.",
            discussion: """
            Each level trains the fold models of --train with x' = (x + N(0, rho^2)) / sqrt(1 + rho^2) \
            on training and validation patches (--rho: fixed rho; --rho-max: rho ~ U(0, level) per \
            sample), then scores them on each --test dataset (its own test folds if --train is listed). \
            Writes sweep.csv, sweep.svg and the matrix report files.

            Examples:
              hrtem sweep noise --train au-884e --test au-80e,au-423e --rho 0,0.25,0.5,0.8,1.2
              hrtem sweep noise --train au-884e --test au-80e --rho-max 0,0.4,0.8 --emit-slurm sweep-slurm
            """)

        @OptionGroup var data: DataOptions
        @Option(help: "The dataset to train on (recipe name, NAME@VERSION or version folder).") var train: String
        @Option(help: "Datasets to test on, comma-separated.") var test: String
        @Option(help: "Fixed noise levels rho, comma-separated (0 = no noise).") var rho: String?
        @Option(name: .customLong("rho-max"), help: "Upper bounds of rho ~ U(0, level), comma-separated.") var rhoMax: String?
        @OptionGroup var training: TrainingOptions
        @OptionGroup var foldModels: FoldModelOptions
        @OptionGroup var execution: ExperimentRunOptions

        func validate() throws {
            guard (rho == nil) != (rhoMax == nil) else { throw ValidationError("give either --rho or --rho-max") }
            guard training.noise == nil && training.noiseMax == nil else {
                throw ValidationError("--noise and --noise-max are set by the sweep; use --rho or --rho-max")
            }
            try training.check()
            try execution.check()
        }

        func run() throws {
            let folder = data.folder
            let levels = try NoiseSweep.parseLevels(rho ?? rhoMax ?? "")
            let trainSet = try DatasetResolution.resolve(train, in: folder)
            let testSets = try MatrixCLI.splitList(test, what: "--test").map { try DatasetResolution.resolve($0, in: folder) }
            let plan = try NoiseSweep.plan(name: execution.name ?? "noise sweep", train: trainSet, test: testSets,
                                           levels: levels, mode: rho != nil ? .fixed : .uniformUpTo,
                                           base: training.settings(defaultThreads: 1), baseSeed: foldModels.seed,
                                           folds: foldModels.folds, executor: execution.executor,
                                           commandLine: MatrixCLI.reproducibleCommandLine())
            try MatrixCLI.runOrEmit(plan, options: execution, data: folder)
        }
    }
}
