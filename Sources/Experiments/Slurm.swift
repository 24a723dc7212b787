import Foundation
import Micrograph

/// Where and how the emitted Slurm jobs run.
public struct SlurmOptions: Sendable {
    /// The `hrtem` binary as the compute nodes see it (overridable at run time with `$HRTEM`).
    public var hrtemExecutable: String
    /// The data folder (models are written under it) on shared storage, or nil for the default.
    public var dataFolder: String?
    /// Where array tasks record results (a `JSONResultStore` folder) on shared storage;
    /// nil: `<emit folder>/results`.
    public var resultsFolder: String?
    /// Where `collect` writes the report; nil: `<emit folder>/report`.
    public var reportFolder: String?
    public var partition: String?
    public var account: String?
    /// Slurm time limit per task, e.g. `04:00:00`.
    public var timeLimit: String?
    /// Memory per task, e.g. `8G`.
    public var memory: String?
    /// At most this many array tasks at once (`--array=0-N%M`), or nil for Slurm's default.
    public var maxConcurrentTasks: Int?

    public init(hrtemExecutable: String, dataFolder: String? = nil, resultsFolder: String? = nil,
                reportFolder: String? = nil, partition: String? = nil, account: String? = nil,
                timeLimit: String? = nil, memory: String? = nil, maxConcurrentTasks: Int? = nil) {
        self.hrtemExecutable = hrtemExecutable
        self.dataFolder = dataFolder
        self.resultsFolder = resultsFolder
        self.reportFolder = reportFolder
        self.partition = partition
        self.account = account
        self.timeLimit = timeLimit
        self.memory = memory
        self.maxConcurrentTasks = maxConcurrentTasks
    }
}

/// The files `SlurmEmitter.emit` wrote.
public struct SlurmJobFiles: Sendable {
    public var planFile: URL
    public var trainScript: URL
    public var evaluateScript: URL
    public var collectScript: URL
    public var submitScript: URL
    public var resultsFolder: URL
    public var reportFolder: URL
}

/// Turns a plan into Slurm job arrays.
///
/// `train.sbatch` is an array over the training units (task i runs unit i of the plan),
/// `evaluate.sbatch` an array over the evaluation units (task i runs unit T + i, T = number of
/// training units), started only when every training task succeeded (`afterok`), and
/// `collect.sbatch` gathers the results into the report after that. `submit.sh` submits the three
/// with their dependencies. Each task runs `hrtem matrix run-unit --plan plan.json --unit N`: the
/// same plan object and the same code path as the local runner, so a finished unit is skipped.
public enum SlurmEmitter {
    /// Writes plan.json, the three batch scripts, submit.sh and logs/ into `folder`.
    /// - Throws: `FormatError` when a file cannot be written; `ExperimentError` for bad options.
    @discardableResult
    public static func emit(_ plan: MatrixPlan, to folder: URL, options: SlurmOptions) throws -> SlurmJobFiles {
        if let limit = options.maxConcurrentTasks, limit < 1 {
            throw ExperimentError("must be at least 1, got \(limit)", subject: "--slurm-max-tasks")
        }
        for (name, value) in [("partition", options.partition), ("account", options.account),
                              ("time", options.timeLimit), ("memory", options.memory)] {
            // #SBATCH lines are not shell-parsed: keep their values to one plain word.
            if let value, value.isEmpty || value.contains(where: { $0.isWhitespace || $0 == "#" || $0 == "'" || $0 == "\"" }) {
                throw ExperimentError("\"\(value)\" must be one word without spaces or quotes", subject: "Slurm \(name)")
            }
        }
        let folder = folder.standardizedFileURL
        let planFile = folder.appendingPathComponent("plan.json")
        let results = URL(fileURLWithPath: options.resultsFolder ?? folder.appendingPathComponent("results").path)
        let report = URL(fileURLWithPath: options.reportFolder ?? folder.appendingPathComponent("report").path)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("logs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: results, withIntermediateDirectories: true)
        try plan.write(to: planFile)

        let files = SlurmJobFiles(planFile: planFile, trainScript: folder.appendingPathComponent("train.sbatch"),
                                  evaluateScript: folder.appendingPathComponent("evaluate.sbatch"),
                                  collectScript: folder.appendingPathComponent("collect.sbatch"),
                                  submitScript: folder.appendingPathComponent("submit.sh"),
                                  resultsFolder: results, reportFolder: report)
        let threads = plan.variants.map(\.settings.threads).max() ?? 1
        var common = ["--plan", planFile.path, "--results", results.path]
        if let data = options.dataFolder { common += ["--data", data] }
        let commonArguments = common.map(shellQuote).joined(separator: " ")

        func header(_ job: String, array: Int?) -> String {
            var lines = ["#!/usr/bin/env bash"]
            lines.append("#SBATCH --job-name=hrtem-\(job)-\(plan.id.prefix(8))")
            if let array {
                lines.append("#SBATCH --array=0-\(array - 1)" + (options.maxConcurrentTasks.map { "%\($0)" } ?? ""))
                lines.append("#SBATCH --output=logs/\(job)-%A_%a.out")
            } else {
                lines.append("#SBATCH --output=logs/\(job)-%j.out")
            }
            lines.append("#SBATCH --ntasks=1")
            lines.append("#SBATCH --cpus-per-task=\(threads)")
            if let partition = options.partition { lines.append("#SBATCH --partition=\(partition)") }
            if let account = options.account { lines.append("#SBATCH --account=\(account)") }
            if let time = options.timeLimit { lines.append("#SBATCH --time=\(time)") }
            if let memory = options.memory { lines.append("#SBATCH --mem=\(memory)") }
            lines.append("# Made by hrtem \(hrtemBuildVersion) for plan \(plan.id) (\(plan.name)).")
            lines.append("set -euo pipefail")
            lines.append("HRTEM=${HRTEM:-\(shellQuote(options.hrtemExecutable))}")
            return lines.joined(separator: "\n") + "\n"
        }

        let train = header("train", array: plan.trainUnits.count) + """
        # Task i trains unit i of the plan: \(plan.trainUnits.count) fold models.
        exec "$HRTEM" matrix run-unit \(commonArguments) --unit "$SLURM_ARRAY_TASK_ID"

        """
        let evaluate = header("evaluate", array: plan.evaluationUnits.count) + """
        # Task i runs evaluation unit i, which is unit \(plan.trainUnits.count) + i of the plan.
        exec "$HRTEM" matrix run-unit \(commonArguments) --unit "$(( SLURM_ARRAY_TASK_ID + \(plan.trainUnits.count) ))"

        """
        let collect = header("collect", array: nil) + """
        exec "$HRTEM" matrix collect \(commonArguments) --out \(shellQuote(report.path))

        """
        let submit = """
        #!/usr/bin/env bash
        # Submits the plan \(plan.id) (\(plan.name)): \(plan.trainUnits.count) training tasks, then
        # \(plan.evaluationUnits.count) evaluation tasks once every training task succeeded, then the report.
        set -euo pipefail
        cd "$(dirname "$0")"
        mkdir -p logs
        train_job=$(sbatch --parsable train.sbatch)
        train_job=${train_job%%;*}
        evaluate_job=$(sbatch --parsable --dependency=afterok:"$train_job" evaluate.sbatch)
        evaluate_job=${evaluate_job%%;*}
        collect_job=$(sbatch --parsable --dependency=afterok:"$evaluate_job" collect.sbatch)
        collect_job=${collect_job%%;*}
        echo "training array: $train_job; evaluation array: $evaluate_job (after $train_job); report: $collect_job (after $evaluate_job)"
        echo "report will be written to:" \(shellQuote(report.path))

        """
        for (text, url) in [(train, files.trainScript), (evaluate, files.evaluateScript),
                            (collect, files.collectScript), (submit, files.submitScript)] {
            try writeFileAtomically(Data(text.utf8), to: url)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
        return files
    }
}
