import ArgumentParser
import Catalog
import Experiments
import Foundation
import Segmentation

struct MatrixCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matrix",
        abstract: "Train on each dataset, test on every other: the generalization matrix.",
        discussion: """
        Each cell (trained on A, tested on B) follows the study: for A = B, fold model i on its own \
        test fold i; for A != B, every fold model on the whole of B; dihedral x8; mean and \
        population std over the fold models. Runs resume: finished units are never redone.

        Examples:
          hrtem matrix --datasets au-884e,au-423e,au-80e --folds 5 --jobs 2
          hrtem matrix --datasets A,B --epochs 20 --emit-slurm slurm-run && bash slurm-run/submit.sh
          hrtem matrix --models imported --datasets Au2p2,Au5 (score existing fold models; nothing is trained)
          hrtem matrix --where 'material = "Au"' --split-by defocus~5 --folds 3   (one dataset per defocus group)
          hrtem matrix run-unit --plan slurm-run/plan.json --unit 0
          hrtem matrix collect --plan slurm-run/plan.json --out report
          hrtem matrix status --plan slurm-run/plan.json
          hrtem matrix resubmit --plan slurm-run/plan.json --failed
        """,
        subcommands: [Run.self, RunUnit.self, Collect.self, Status.self, Resubmit.self],
        defaultSubcommand: Run.self
    )

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run", abstract: "Plan the matrix and run it here, or emit it as Slurm job arrays (the default).")

        @OptionGroup var data: DataOptions
        @Option(help: "Datasets, comma-separated: recipe names, NAME@VERSION, or version folders.")
        var datasets: String?
        @OptionGroup var split: MatrixSplitOptions
        @Option(help: ArgumentHelp(
            "Score existing fold models instead of training: model ids or patterns (UNet_2p2nm*), all, imported, trained, trained-on:DATASET; comma-separated.",
            discussion: "Rows are the models' training datasets, columns --datasets. A row whose data is one of --datasets (the same version, a version imported by `dataset import-h5` from the models' <Name>_Images.h5, or one --match names) gets the diagonal rule. Only --dihedral and --threads of the training options apply."))
        var models: String?
        @Option(name: .customLong("match"), help: ArgumentHelp(
            "TRAINED_ON=DATASET: the selected models trained on TRAINED_ON (as `hrtem model list` shows it) were trained on DATASET of --datasets.",
            valueName: "trained-on=dataset"))
        var matches: [String] = []
        @OptionGroup var training: TrainingOptions
        @OptionGroup var foldModels: FoldModelOptions
        @OptionGroup var losses: LossComparisonOptions
        @OptionGroup var foldRules: FoldComparisonOptions
        @OptionGroup var execution: ExperimentRunOptions

        func validate() throws {
            try training.check()
            try losses.check()
            _ = try foldRules.rules()
            try execution.check()
            try split.check(datasets: datasets)
            if models == nil && !matches.isEmpty { throw ValidationError("--match applies to --models only") }
            for match in matches where match.split(separator: "=", omittingEmptySubsequences: false).count != 2 || match.hasPrefix("=") || match.hasSuffix("=") {
                throw ValidationError("--match \(match): expected TRAINED_ON=DATASET")
            }
        }

        func run() throws {
            let folder = data.folder
            let variants = try losses.variants(training, foldModels) ?? [foldModels.variant("default", training)]
            var names = try datasets.map { try MatrixCLI.splitList($0, what: "--datasets") } ?? []
            var name = execution.name ?? "matrix"
            if split.isSplit {
                let made = try split.datasets(folds: foldModels.folds, data: folder)
                names = made.names
                name = execution.name ?? "matrix split by \(made.split.field.rawValue): "
                    + made.split.groups.map(\.label).joined(separator: "; ")
            }
            if let rules = try foldRules.rules() {
                try foldRules.run(rules: rules, datasets: names.joined(separator: ","), training: training, foldModels: foldModels,
                                  variants: variants, execution: execution, data: folder)
                return
            }
            let datasets = try names.map { try DatasetResolution.resolve($0, in: folder) }
            if let models {
                try evaluateExisting(models, on: datasets, in: folder)
                return
            }
            let plan = try MatrixPlan(name: name, trainOn: datasets, testOn: datasets, folds: foldModels.folds,
                                      variants: variants,
                                      executor: execution.executor, dihedral: training.dihedral,
                                      commandLine: MatrixCLI.reproducibleCommandLine())
            try MatrixCLI.runOrEmit(plan, options: execution, data: folder)
        }

        /// The evaluation-only matrix: the selected models scored on `datasets` with the cell rule.
        func evaluateExisting(_ selection: String, on datasets: [DatasetVersionRef], in folder: DataFolder) throws {
            guard FileManager.default.fileExists(atPath: folder.catalogFile.path) else {
                throw ExperimentError("has no catalog, so no models to select (hrtem model import, hrtem train)", subject: "data folder \(folder.url.path)")
            }
            let candidates = try ModelSelection.candidates(in: try CatalogStore(folder: folder))
            let selected = try ModelSelection(parsing: selection).select(from: candidates)
            let pairs = matches.map { $0.split(separator: "=", maxSplits: 1).map(String.init) }
            let rows = try DatasetResolution.rows(for: selected, columns: datasets,
                                                  matches: Dictionary(pairs.map { ($0[0], $0[1]) }, uniquingKeysWith: { $1 }), in: folder)
            let settings = training.settings(defaultThreads: 1)
            let plan = try MatrixPlan(name: execution.name ?? "evaluation", evaluating: rows, testOn: datasets,
                                      dihedral: settings.dihedral, threads: settings.threads,
                                      commandLine: MatrixCLI.reproducibleCommandLine())
            for row in rows {
                let diagonal = datasets.contains { $0.id == row.dataset.id } ? "its own test folds" : "no diagonal"
                MatrixCLI.printError("row \(row.dataset.name): \(row.models.count) model(s), \(diagonal)")
            }
            try MatrixCLI.runOrEmit(plan, options: execution, data: folder)
        }
    }

    struct RunUnit: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run-unit",
            abstract: "Run one unit of a plan (what each Slurm array task does); a finished unit is skipped.")

        @OptionGroup var data: DataOptions
        @Option(help: "The plan file (plan.json).") var plan: String
        @Option(help: "Unit index: training units first (0..T-1), then evaluation units.") var unit: Int
        @Option(help: "Results folder (default: results/ beside the plan).") var results: String?

        func run() throws {
            let workspace = MatrixCLI.workspace(data.folder)
            let (planUnit, outcome) = try workspace.runUnitRecordingItsRun(planFile: MatrixCLI.absoluteURL(plan), index: unit,
                                                                           resultsFolder: results.map(MatrixCLI.absoluteURL))
            print("unit \(unit) (\(planUnit.label)): \(outcome.rawValue)")
        }
    }

    struct Collect: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "collect",
            abstract: "Gather the results of a plan (e.g. after a Slurm run) into the data folder and write the report.")

        @OptionGroup var data: DataOptions
        @Option(help: "The plan file (plan.json).") var plan: String
        @Option(help: "Results folder the units wrote (default: results/ beside the plan).") var results: String?
        @Option(help: "Report folder (default: <data>/experiments/<plan id>/report).") var out: String?

        func run() throws {
            let workspace = MatrixCLI.workspace(data.folder)
            let collected = try workspace.collect(planFile: MatrixCLI.absoluteURL(plan), resultsFolder: results.map(MatrixCLI.absoluteURL),
                                                  reportFolder: out.map(MatrixCLI.absoluteURL))
            print(MatrixReport.textTable(collected.results), terminator: "")
            print("collected \(collected.copied) new result(s); report: \(collected.reportFolder.appendingPathComponent("report.html").path)")
            if !collected.results.isComplete {
                MatrixCLI.printError("incomplete: \(collected.results.missingUnits) unit(s) have no result yet")
                throw ExitCode(1)
            }
        }
    }
}

/// What `matrix` and `sweep` add to the trainer's options: how many fold models, and the run's seed.
struct FoldModelOptions: ParsableArguments {
    @Option(help: "Fold models per dataset (folds 0..N-1 of its version).") var folds: Int = 5
    @Option(help: "Base seed: fold k trains with a seed derived from it (default: the study's per-fold seeds from the version's folds.json).")
    var seed: UInt64?

    func variant(_ label: String, _ training: TrainingOptions) -> TrainingVariant {
        TrainingVariant(label: label, settings: training.settings(defaultThreads: 1), baseSeed: seed)
    }
}

/// Where and how an experiment runs, shared by `matrix` and `sweep`.
struct ExperimentRunOptions: ParsableArguments {
    @Option(help: "Units run at once (default: cores / threads).") var jobs: Int?
    @Option(help: "A name for the experiment (shown in the report).") var name: String?
    @Option(help: "Report folder (default: <data>/experiments/<plan id>/report).") var out: String?
    @Option(name: .customLong("emit-slurm"), help: "Write the plan and Slurm job-array scripts to this folder instead of running.")
    var emitSlurm: String?
    @Option(name: .customLong("slurm-partition"), help: "Slurm partition.") var slurmPartition: String?
    @Option(name: .customLong("slurm-account"), help: "Slurm account.") var slurmAccount: String?
    @Option(name: .customLong("slurm-time"), help: "Slurm time limit per task, e.g. 04:00:00.") var slurmTime: String?
    @Option(name: .customLong("slurm-mem"), help: "Slurm memory per task, e.g. 8G.") var slurmMemory: String?
    @Option(name: .customLong("slurm-max-tasks"), help: "At most this many array tasks at once.") var slurmMaxTasks: Int?
    @Option(name: .customLong("slurm-hrtem"), help: "Path of hrtem on the compute nodes (default: this binary).")
    var slurmHrtem: String?
    @Option(help: ArgumentHelp("Executor: trainer, or simulated (tests the machinery; trains nothing).", visibility: .hidden))
    var executor: ExecutorKind = .trainer

    func check() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1, got \(jobs)") }
    }
}

/// The plumbing `matrix` and `sweep` share.
enum MatrixCLI {
    /// Runs the plan here (resuming) and writes the report, or emits it for Slurm.
    /// The workspace of a data folder, with the trainer reporting each epoch on stderr.
    static func workspace(_ data: DataFolder) -> ExperimentWorkspace {
        ExperimentWorkspace(dataFolder: data) { kind, folder in
            kind == .trainer ? TrainerExecutor(dataFolder: folder, progress: { unit, progress in
                                   guard progress.epochFinished else { return }
                                   MatrixCLI.printError(MatrixCLI.epochLine(unit, progress))
                               })
                             : try ExperimentWorkspace.defaultExecutor(kind, folder)
        }
    }

    static func runOrEmit(_ plan: MatrixPlan, options: ExperimentRunOptions, data: DataFolder) throws {
        let workspace = workspace(data)
        if let emit = options.emitSlurm {
            let hrtem = options.slurmHrtem ?? Bundle.main.executableURL?.path ?? CommandLine.arguments[0]
            let files = try workspace.emitSlurm(plan, to: MatrixCLI.absoluteURL(emit), options: SlurmOptions(
                hrtemExecutable: hrtem, reportFolder: options.out.map { MatrixCLI.absoluteURL($0).path },
                partition: options.slurmPartition, account: options.slurmAccount, timeLimit: options.slurmTime,
                memory: options.slurmMemory, maxConcurrentTasks: options.slurmMaxTasks))
            print("plan \(plan.id): \(plan.trainUnits.count) training units, \(plan.evaluationUnits.count) evaluation units")
            print("wrote \(files.planFile.path) and Slurm scripts; submit with: bash \(files.submitScript.path)")
            print("afterwards: hrtem matrix collect --plan \(files.planFile.path)")
            return
        }
        try runLocally(plan, options: options, data: data)
    }

    /// Runs the plan here (resuming), writes the report and prints the table; returns the results.
    @discardableResult
    static func runLocally(_ plan: MatrixPlan, options: ExperimentRunOptions, data: DataFolder) throws -> MatrixResults {
        let workspace = workspace(data)
        let threads = plan.variants.map(\.settings.threads).max() ?? 1
        let jobs = options.jobs ?? max(1, ProcessInfo.processInfo.activeProcessorCount / threads)
        MatrixCLI.printError("plan \(plan.id): \(plan.trainUnits.count) training + \(plan.evaluationUnits.count) evaluation units, \(jobs) at a time")
        let outcome = try workspace.runLocally(plan, jobs: jobs, reportFolder: options.out.map(MatrixCLI.absoluteURL)) { event in
            MatrixCLI.printError("[\(event.finished)/\(event.total)] \(event.outcome.rawValue): \(event.unitLabel)" + (event.message.map { " (\($0))" } ?? ""))
        }
        print(MatrixReport.textTable(outcome.results), terminator: "")
        print("report: \(outcome.reportFolder.appendingPathComponent("report.html").path)")
        if let error = outcome.error {
            MatrixCLI.printError("\(error)")
            throw ExitCode(1)
        }
        return outcome.results
    }

    /// One line per finished epoch of a unit: what parallel units print.
    static func epochLine(_ unit: TrainUnit, _ progress: TrainingProgress) -> String {
        var line = "\(unit.label): epoch \(progress.epoch)/\(progress.epochs), loss \(String(format: "%.4f", progress.trainingLoss))"
        if let validation = progress.validation {
            line += ", validation loss \(String(format: "%.4f", validation.loss)), hard Dice \(String(format: "%.3f", validation.hardDice))"
        }
        if let left = progress.estimatedSecondsLeft { line += ", \(Int(left.rounded())) s left" }
        return line
    }

    static func splitList(_ text: String, what: String) throws -> [String] {
        let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw ValidationError("\(what) needs at least one item") }
        return items
    }

    static func absoluteURL(_ path: String) -> URL {
        path.hasPrefix("/") ? URL(fileURLWithPath: path)
            : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path).standardizedFileURL
    }

    /// The command line as a person would retype it (`hrtem` rather than the binary's path).
    static func reproducibleCommandLine() -> [String] { ["hrtem"] + CommandLine.arguments.dropFirst() }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
