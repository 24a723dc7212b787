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
/// training units), and `collect.sbatch` gathers the results into the report. `submit.sh`
/// submits the training array, then one evaluation array per fold model, over that model's
/// evaluations, each started only when that model's training task succeeded (`afterok` on the
/// task, `--kill-on-invalid-dep`), so one failed model holds back its own evaluations and no
/// others; the report comes after every evaluation array ended (`afterany`) and shows what is
/// missing. Each task runs `hrtem matrix run-unit --plan plan.json --unit N`: the same plan object
/// and the same code path as the local runner, so a finished unit is skipped.
public enum SlurmEmitter {
    /// The job name of a plan's `train`, `evaluate` or `collect` job: what `squeue` shows and
    /// `hrtem matrix status` looks for.
    public static func jobName(_ job: String, plan: MatrixPlan) -> String { "hrtem-\(job)-\(plan.id.prefix(8))" }

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
            lines.append("#SBATCH --job-name=\(jobName(job, plan: plan))")
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
            lines.append(comment("Made by hrtem \(hrtemBuildVersion) for plan \(plan.id) (\(plan.name))."))
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
        let submit = submissionScript(
            plan, trainUnits: Array(plan.trainUnits.indices),
            evaluationUnits: Array(plan.trainUnits.count..<plan.unitCount), maxConcurrentTasks: options.maxConcurrentTasks,
            purpose: "Submits the plan \(plan.id) (\(plan.name)): \(plan.trainUnits.count) training tasks, each fold model's "
                + "evaluations once it is trained, then the report.",
            reportFolder: report.path)
        // An evaluation-only plan (existing models) trains nothing: it has no training array.
        let scripts = (plan.trainUnits.isEmpty ? [] : [(train, files.trainScript)])
            + [(evaluate, files.evaluateScript), (collect, files.collectScript), (submit, files.submitScript)]
        for (text, url) in scripts {
            try writeFileAtomically(Data(text.utf8), to: url)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
        return files
    }
}

extension SlurmEmitter {
    /// A bash script, run in the folder of the emitted scripts, that submits the given units of
    /// `plan` (indices into `plan.units`) with the plan's dependency rule:
    ///
    /// - the training units as one `train.sbatch` array over their indices;
    /// - for each of those fold models, its evaluations among `evaluationUnits` as an
    ///   `evaluate.sbatch` array with `--dependency=afterok:<training job>_<task>` and
    ///   `--kill-on-invalid-dep=yes` (a model that fails takes only its own evaluations out of
    ///   the queue);
    /// - evaluations whose model is not trained by this submission (it is done already) as one
    ///   array without a dependency;
    /// - `collect.sbatch` after every array ended (`afterany`), so the report says what is missing.
    ///
    /// Each `sbatch` appends `kind<TAB>job id<TAB>array` to `submitted.tsv` (see `SlurmSubmissions`).
    /// `maxConcurrentTasks` is each array's `%` limit; `reportFolder`, when given, is printed.
    public static func submissionScript(_ plan: MatrixPlan, trainUnits: [Int], evaluationUnits: [Int], maxConcurrentTasks: Int?,
                                        purpose: String, reportFolder: String?) -> String {
        let training = Set(trainUnits)
        let limit = maxConcurrentTasks.map { "%\($0)" } ?? ""
        var modelIndex: [String: Int] = [:]
        for (index, unit) in plan.trainUnits.enumerated() { modelIndex[unit.id] = index }
        // Evaluation tasks (indices into the evaluation array) grouped by the training task they wait for, or nil.
        var groups: [Int?: [Int]] = [:]
        for index in evaluationUnits.sorted() {
            guard case .evaluate(let unit)? = try? plan.unit(at: index) else { continue }
            let model = modelIndex[unit.trainUnitID].flatMap { training.contains($0) ? $0 : nil }
            groups[model, default: []].append(index - plan.trainUnits.count)
        }
        var lines = [
            "#!/usr/bin/env bash",
            comment(purpose),
            "set -euo pipefail",
            "shopt -s inherit_errexit",
            "cd \"$(dirname \"$0\")\"",
            "mkdir -p logs",
            "# submit KIND ARRAY [sbatch options] SCRIPT: submits, notes the job in submitted.tsv, prints its id.",
            "submit() {",
            "  local kind=$1 array=$2 job",
            "  shift 2",
            "  job=$(sbatch --parsable --array=\"$array\" \"$@\")",
            "  job=${job%%;*}",
            "  printf '%s\\t%s\\t%s\\n' \"$kind\" \"$job\" \"$array\" >> submitted.tsv",
            "  echo \"$job\"",
            "}",
            "after=\"\"",
        ]
        if !trainUnits.isEmpty {
            lines.append("train_job=$(submit train \(arraySpec(trainUnits.sorted()))\(limit) train.sbatch)")
            lines.append("after+=\":$train_job\"")
            lines.append("echo \"training array: $train_job (\(trainUnits.count) fold models)\"")
        }
        var arrays = 0
        for model in trainUnits.sorted() {
            guard let tasks = groups[model] else { continue }
            arrays += 1
            lines.append("job=$(submit evaluate \(arraySpec(tasks))\(limit) --dependency=afterok:\"${train_job}_\(model)\" --kill-on-invalid-dep=yes evaluate.sbatch)")
            lines.append("after+=\":$job\"")
        }
        if arrays > 0 { lines.append("echo \"evaluation arrays: \(arrays), each after its model's training task\"") }
        if let ready = groups[nil] {
            lines.append("job=$(submit evaluate \(arraySpec(ready))\(limit) evaluate.sbatch)")
            lines.append("after+=\":$job\"")
            lines.append("echo \"evaluation array: $job (\(ready.count) evaluations of models already trained)\"")
        }
        lines += [
            "collect_job=$(sbatch --parsable ${after:+--dependency=afterany$after} collect.sbatch)",
            "collect_job=${collect_job%%;*}",
            "echo \"report: job $collect_job, once every array above ended\"" + (reportFolder.map { "; echo \"it will be written to:\" \(shellQuote($0))" } ?? ""),
            "",
        ]
        return lines.joined(separator: "\n")
    }

    /// A one-line shell comment: line breaks in `text` (a plan name may hold anything) become spaces.
    static func comment(_ text: String) -> String {
        "# " + String(text.map { $0.isNewline ? " " : $0 })
    }

    /// Sorted task indices as Slurm's `--array` list: runs of consecutive numbers as `a-b`.
    public static func arraySpec(_ tasks: [Int]) -> String {
        var parts: [String] = []
        var index = 0
        while index < tasks.count {
            var end = index
            while end + 1 < tasks.count && tasks[end + 1] == tasks[end] + 1 { end += 1 }
            parts.append(end == index ? "\(tasks[index])" : "\(tasks[index])-\(tasks[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }

    /// The task indices of an `--array` list (`0-3,7,9-10`, a `%` limit ignored).
    /// - Returns: nil when the list is not of that form.
    public static func arrayTasks(_ spec: String) -> [Int]? {
        var tasks: [Int] = []
        for part in spec.split(separator: "%", maxSplits: 1).first.map(String.init)?.split(separator: ",") ?? [] {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]),
                  low >= 0, high >= low, high - low < 1_000_000 else { return nil }
            tasks += Array(low...high)
        }
        return tasks.isEmpty ? nil : tasks
    }
}
