import Foundation
import Micrograph

/// What one run of a unit left beside the results: who ran it, where its output went and how
/// it ended. `hrtem matrix run-unit` writes it when it starts a unit and again when the unit
/// ends; `hrtem matrix status` reads it (a result says *that* a unit is done, this says what
/// happened to one that is not).
public struct UnitRun: Codable, Hashable, Sendable {
    public enum State: String, Codable, Sendable {
        case running
        /// The unit threw; `message` says why.
        case failed
        /// The unit recorded its result.
        case finished
    }

    public var unit: Int
    public var unitID: String
    public var state: State
    public var host: String
    public var processID: Int32
    /// `<array job>_<task>` for a Slurm array task, `<job>` for a plain job, nil outside Slurm.
    public var slurmJob: String?
    /// The file the run's output went to (a Slurm task's log), when it went to a file.
    public var log: String?
    /// ISO 8601, UTC.
    public var started: String
    public var ended: String?
    public var message: String?

    /// A run of unit `index` starting now in this process, described from its environment
    /// (`SLURM_ARRAY_JOB_ID`, `SLURM_ARRAY_TASK_ID`, `SLURM_JOB_ID`) and its standard output.
    public static func startingNow(unit index: Int, unitID: String,
                                   environment: [String: String] = ProcessInfo.processInfo.environment) -> UnitRun {
        var job: String?
        if let array = environment["SLURM_ARRAY_JOB_ID"], let task = environment["SLURM_ARRAY_TASK_ID"] {
            job = "\(array)_\(task)"
        } else {
            job = environment["SLURM_JOB_ID"]
        }
        return UnitRun(unit: index, unitID: unitID, state: .running, host: hostName(),
                       processID: getpid(), slurmJob: job, log: standardOutputFile(),
                       started: timestamp(), ended: nil, message: nil)
    }

    /// The regular file standard output is written to (Slurm opens a task's log there), or nil
    /// for a terminal, a pipe or /dev/null.
    static func standardOutputFile() -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/1"),
              target.hasPrefix("/"), !target.hasPrefix("/dev/"),
              (try? FileManager.default.attributesOfItem(atPath: target)[.type] as? FileAttributeType) == .typeRegular
        else { return nil }
        return target
    }

    /// This machine's name as `gethostname` gives it (no name lookup, which can stall on a node).
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date())
    }
}

/// The `UnitRun` records of a results folder: `<results>/runs/<unit id>.json`, one per unit,
/// each written atomically by the one process running that unit.
public struct UnitRunRecords: Sendable {
    public let folder: URL

    /// The records beside a `JSONResultStore` folder.
    public init(resultsFolder: URL) { folder = resultsFolder.appendingPathComponent("runs") }

    public func file(_ unitID: String) -> URL { folder.appendingPathComponent("\(unitID).json") }

    /// The unit's latest run, or nil when none was recorded.
    /// - Throws: `FormatError` for a record that is not one.
    public func run(of unitID: String) throws -> UnitRun? {
        let url = file(unitID)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try readJSONFile(UnitRun.self, from: url, what: "a unit's run record")
    }

    public func record(_ run: UnitRun) throws {
        try writeFileAtomically(try CanonicalJSON.file(run), to: file(run.unitID))
    }
}

/// The jobs a submission script (`submit.sh`, `resubmit-N.sh`) put in the queue, from the
/// `submitted.tsv` it appends to: `kind<TAB>job id<TAB>array` per `sbatch`.
public struct SlurmSubmissions: Sendable {
    /// For each unit index of the plan, the latest array task that was to run it (`<job>_<task>`).
    public var latestTask: [Int: String] = [:]
    /// For each unit index, the log file Slurm opens for that task (relative to the script folder).
    public var latestLog: [Int: String] = [:]
    /// For each unit index, every array task ever submitted to run it.
    public var allTasks: [Int: Set<String>] = [:]

    /// Reads `<folder>/submitted.tsv`; an absent file is no submission.
    /// - Throws: `FormatError` naming the line of a malformed entry.
    public init(folder: URL, plan: MatrixPlan) throws {
        let url = folder.appendingPathComponent("submitted.tsv")
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw FormatError(file: url.path, "cannot read the submitted jobs: \(error.localizedDescription)")
        }
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let fields = line.split(separator: "\t").map(String.init)
            guard fields.count == 3, ["train", "evaluate"].contains(fields[0]), !fields[1].isEmpty,
                  let tasks = SlurmEmitter.arrayTasks(fields[2]) else {
                throw FormatError(file: url.path, "line \(number + 1): expected train|evaluate, a job id and an array list separated by tabs, found \"\(line)\"")
            }
            let offset = fields[0] == "train" ? 0 : plan.trainUnits.count
            for task in tasks {
                latestTask[offset + task] = "\(fields[1])_\(task)"
                allTasks[offset + task, default: []].insert("\(fields[1])_\(task)")
                latestLog[offset + task] = "logs/\(fields[0])-\(fields[1])_\(task).out"
            }
        }
    }

    public init() {}
}

/// One line of `squeue` about a plan's array task.
public struct SlurmQueueEntry: Hashable, Sendable {
    public var arrayJob: String
    public var task: Int
    public var jobName: String
    /// Slurm's state name: PENDING, RUNNING, COMPLETING, ...
    public var state: String
    /// Why it is pending (`Dependency`, `Resources`, ...), or `None`.
    public var reason: String

    public init(arrayJob: String, task: Int, jobName: String, state: String, reason: String) {
        self.arrayJob = arrayJob
        self.task = task
        self.jobName = jobName
        self.state = state
        self.reason = reason
    }

    var isRunning: Bool { ["RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"].contains(state) }
}

/// The Slurm queue as `squeue` shows it.
public enum SlurmQueue {
    /// What `squeue` could tell.
    public enum Snapshot: Sendable {
        case entries([SlurmQueueEntry])
        /// No `squeue` on the PATH, or it failed; the reason in words.
        case unavailable(String)
    }

    /// The pending and running array tasks of the jobs named `names`, one entry per task
    /// (`squeue --array`).
    public static func snapshot(jobNames names: [String]) -> Snapshot {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["squeue", "--noheader", "--array", "--name=" + names.joined(separator: ","), "--format=%F|%K|%j|%T|%r"]
        // One pipe for both streams: nothing to drain concurrently, and `parse` keeps only
        // queue lines, so a warning on stderr cannot be taken for a task.
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        do { try process.run() } catch { return .unavailable("cannot run squeue: \(error.localizedDescription)") }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 127 { return .unavailable("squeue is not installed here") }
        guard process.terminationStatus == 0 else {
            // squeue's last line is its conclusion ("fatal: ..."), the lines before are how it got there.
            let reason = text.split(separator: "\n").last.map(String.init) ?? ""
            return .unavailable("squeue failed (exit \(process.terminationStatus)): \(reason)")
        }
        return .entries(parse(text))
    }

    /// Lines of `%F|%K|%j|%T|%r` (array job, task, name, state, reason); lines of other jobs or
    /// forms are left out.
    public static func parse(_ text: String) -> [SlurmQueueEntry] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5, let task = Int(fields[1]) else { return nil }
            return SlurmQueueEntry(arrayJob: fields[0], task: task, jobName: fields[2], state: fields[3], reason: fields[4])
        }
    }
}

/// Where one unit of a plan stands.
public struct UnitStatus: Hashable, Sendable {
    public enum State: String, Sendable, CaseIterable {
        case pending, running, done, failed
    }

    public var index: Int
    public var label: String
    public var state: State
    /// The file the unit's output went to (or will go to, for a queued task), if known.
    public var log: String?
    /// Why, in words: the error of a failed unit, the job and reason of a queued one.
    public var detail: String?
}

/// The status of every unit of a plan, from its results folder, the runs recorded beside it,
/// the jobs its scripts submitted and (when Slurm answers) the queue.
public enum PlanStatus {
    /// - Parameters:
    ///   - scriptFolder: the folder of `plan.json` and the Slurm scripts (`submitted.tsv`, `logs/`).
    ///   - queue: what `squeue` said, or `.unavailable` (states then come from the files alone).
    /// - Throws: `FormatError` for a result, run record or submission file that cannot be read.
    public static func read(_ plan: MatrixPlan, scriptFolder: URL, resultsFolder: URL,
                            queue: SlurmQueue.Snapshot) throws -> [UnitStatus] {
        let results = JSONResultStore(folder: resultsFolder)
        let runs = UnitRunRecords(resultsFolder: resultsFolder)
        let submissions = try SlurmSubmissions(folder: scriptFolder, plan: plan)
        let trainName = SlurmEmitter.jobName("train", plan: plan), evaluateName = SlurmEmitter.jobName("evaluate", plan: plan)
        var queued: [Int: SlurmQueueEntry] = [:]
        var queueKnown = false
        if case .entries(let entries) = queue {
            queueKnown = true
            for entry in entries {
                if entry.jobName == trainName, entry.task < plan.trainUnits.count { queued[entry.task] = entry }
                if entry.jobName == evaluateName, entry.task < plan.evaluationUnits.count { queued[plan.trainUnits.count + entry.task] = entry }
            }
        }
        var modelIndex: [String: Int] = [:]
        for (index, unit) in plan.trainUnits.enumerated() { modelIndex[unit.id] = index }
        let host = UnitRun.hostName()

        var statuses: [UnitStatus] = []
        for (index, unit) in plan.units.enumerated() {
            let run = try runs.run(of: unit.id)
            let predictedLog = submissions.latestLog[index].map { scriptFolder.appendingPathComponent($0).path }
            var status = UnitStatus(index: index, label: unit.label, state: .pending, log: run?.log ?? predictedLog, detail: nil)
            let done: Bool
            switch unit {
            case .train(let training): done = try results.model(for: training) != nil
            case .evaluate(let evaluation): done = try results.evaluation(for: evaluation) != nil
            }
            if done {
                status.state = .done
            } else if let entry = queued[index] {
                status.state = entry.isRunning ? .running : .pending
                status.log = predictedLog ?? status.log
                status.detail = "job \(entry.arrayJob)_\(entry.task)" + (entry.isRunning ? "" : ", waiting: \(entry.reason)")
            } else if let run, run.state == .failed {
                status.state = .failed
                status.detail = run.message
            } else if let run, run.state == .running {
                // A job the plan's scripts submitted is judged by the queue; any other (run-unit
                // by hand inside an allocation) by its process, like a run outside Slurm.
                if let job = run.slurmJob, submissions.allTasks[index]?.contains(job) ?? false {
                    status.state = queueKnown ? .failed : .running
                    status.detail = queueKnown
                        ? "job \(job) ended without recording a result (cancelled, or killed for time or memory?)"
                        : "job \(job) (the queue could not be read to confirm)"
                } else if run.host == host {
                    let alive = kill(run.processID, 0) == 0 || errno == EPERM
                    status.state = alive ? .running : .failed
                    status.detail = alive ? "process \(run.processID)" : "process \(run.processID) ended without recording a result"
                } else {
                    status.state = .running
                    status.detail = "process \(run.processID) on \(run.host) (cannot check from here)"
                }
            } else if case .evaluate(let evaluation) = unit, let model = modelIndex[evaluation.trainUnitID],
                      statuses[model].state == .failed {
                status.state = .failed
                status.detail = "not run: its model (unit \(model)) failed"
            } else if queueKnown, let task = submissions.latestTask[index] {
                status.state = .failed
                status.detail = "job \(task) left the queue without running it (cancelled?)"
            } else {
                status.detail = submissions.latestTask[index].map { "job \($0)" } ?? "not submitted"
            }
            statuses.append(status)
        }
        return statuses
    }

    /// The status as a table for people: one line per unit (index, state, what, log) and an
    /// indented line with the detail of each unit that is not done.
    public static func text(_ statuses: [UnitStatus]) -> String {
        let labelWidth = min(60, statuses.map(\.label.count).max() ?? 0)
        func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text : text + String(repeating: " ", count: width - text.count) }
        var lines = [pad("unit", 6) + pad("state", 9) + pad("what", labelWidth + 2) + "log"]
        for status in statuses {
            lines.append(pad(String(status.index), 6) + pad(status.state.rawValue, 9) + pad(status.label, labelWidth + 2) + (status.log ?? "-"))
            if status.state != .done, let detail = status.detail {
                lines.append(String(repeating: " ", count: 6) + detail.replacingOccurrences(of: "\n", with: "\n      "))
            }
        }
        var counts: [String] = []
        for state in [UnitStatus.State.done, .running, .pending, .failed] {
            counts.append("\(statuses.filter { $0.state == state }.count) \(state.rawValue)")
        }
        lines.append("\(statuses.count) units: " + counts.joined(separator: ", "))
        return lines.joined(separator: "\n") + "\n"
    }
}

extension ExperimentWorkspace {
    /// `runUnit`, recording the run beside the results (`UnitRunRecords`): running when it
    /// starts, then finished or failed (with the error) when it ends. A unit already done is
    /// skipped without touching its record.
    /// - Throws: whatever `runUnit` throws, after recording the failure.
    public func runUnitRecordingItsRun(planFile: URL, index: Int, resultsFolder: URL? = nil) throws -> (PlanUnit, UnitOutcome) {
        let plan = try MatrixPlan.read(from: planFile)
        let unit = try plan.unit(at: index)
        let results = resultsFolder ?? planFile.deletingLastPathComponent().appendingPathComponent("results")
        let store = JSONResultStore(folder: results)
        let done: Bool
        switch unit {
        case .train(let training): done = try store.model(for: training) != nil
        case .evaluate(let evaluation): done = try store.evaluation(for: evaluation) != nil
        }
        if done { return try runUnit(planFile: planFile, index: index, resultsFolder: results) }
        let records = UnitRunRecords(resultsFolder: results)
        var run = UnitRun.startingNow(unit: index, unitID: unit.id)
        try records.record(run)
        do {
            let outcome = try runUnit(planFile: planFile, index: index, resultsFolder: results)
            run.state = .finished
            run.ended = UnitRun.timestamp()
            try records.record(run)
            return outcome
        } catch {
            run.state = .failed
            run.ended = UnitRun.timestamp()
            run.message = "\(error)"
            try? records.record(run)
            throw error
        }
    }

    /// The status of every unit of the plan in `planFile` (see `PlanStatus.read`); the queue is
    /// asked with `squeue` unless `queue` is given.
    public func status(planFile: URL, resultsFolder: URL? = nil, queue: SlurmQueue.Snapshot? = nil) throws
        -> (plan: MatrixPlan, units: [UnitStatus], queue: SlurmQueue.Snapshot) {
        let plan = try MatrixPlan.read(from: planFile)
        let folder = planFile.deletingLastPathComponent()
        let snapshot = queue ?? SlurmQueue.snapshot(jobNames: ["train", "evaluate"].map { SlurmEmitter.jobName($0, plan: plan) })
        let units = try PlanStatus.read(plan, scriptFolder: folder,
                                        resultsFolder: resultsFolder ?? folder.appendingPathComponent("results"), queue: snapshot)
        return (plan, units, snapshot)
    }

    /// Writes `resubmit-N.sh` beside the plan's Slurm scripts: a submission (with the plan's
    /// dependency rule, `SlurmEmitter.submissionScript`) of the units `statuses` calls failed.
    /// - Returns: the script and the units it submits; nil when no unit failed.
    /// - Throws: `ExperimentError` when the folder has no emitted scripts.
    public func writeResubmission(planFile: URL, plan: MatrixPlan, statuses: [UnitStatus]) throws -> (script: URL, units: [Int])? {
        let folder = planFile.deletingLastPathComponent()
        for name in ["train.sbatch", "evaluate.sbatch", "collect.sbatch"]
        where !FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path) {
            throw ExperimentError("no \(name) beside the plan; resubmit works on a folder written by `hrtem matrix --emit-slurm`",
                                  subject: folder.path)
        }
        let failed = statuses.filter { $0.state == .failed }.map(\.index)
        guard !failed.isEmpty else { return nil }
        // The limit the scripts were emitted with (`#SBATCH --array=0-N%M`): a command-line --array replaces it.
        let train = (try? String(contentsOf: folder.appendingPathComponent("train.sbatch"), encoding: .utf8)) ?? ""
        let limit = train.split(separator: "\n").first { $0.hasPrefix("#SBATCH --array=") }
            .flatMap { $0.split(separator: "%").dropFirst().first.flatMap { Int($0) } }
        var number = 1
        while FileManager.default.fileExists(atPath: folder.appendingPathComponent("resubmit-\(number).sh").path) { number += 1 }
        let script = folder.appendingPathComponent("resubmit-\(number).sh")
        let text = SlurmEmitter.submissionScript(
            plan, trainUnits: failed.filter { $0 < plan.trainUnits.count }, evaluationUnits: failed.filter { $0 >= plan.trainUnits.count },
            maxConcurrentTasks: limit,
            purpose: "Resubmits the \(failed.count) failed unit(s) of plan \(plan.id) (\(plan.name)): \(SlurmEmitter.arraySpec(failed)).",
            reportFolder: nil)
        try writeFileAtomically(Data(text.utf8), to: script)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        return (script, failed)
    }
}
