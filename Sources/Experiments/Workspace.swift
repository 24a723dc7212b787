import Catalog
import Foundation
import GRDB
import Micrograph

/// Experiments inside a data folder: where plans, results and reports live, which executor runs
/// a plan, and the four things the CLI does (run a plan locally, emit it for Slurm, run one unit,
/// collect). The CLI only parses arguments and calls these.
///
/// Layout: `<data>/experiments/<plan id>/plan.json`, `.../results/` (a `JSONResultStore`),
/// `.../report/` (the default report folder); models under `<data>/models/<training unit id>/`.
public struct ExperimentWorkspace: Sendable {
    public let dataFolder: DataFolder
    /// Makes the executor for a plan; replaceable so tests and other front ends can inject one.
    public var makeExecutor: @Sendable (ExecutorKind, DataFolder) throws -> UnitExecutor

    public init(dataFolder: DataFolder,
                makeExecutor: @escaping @Sendable (ExecutorKind, DataFolder) throws -> UnitExecutor = { try ExperimentWorkspace.defaultExecutor($0, $1) }) {
        self.dataFolder = dataFolder
        self.makeExecutor = makeExecutor
    }

    /// The simulated executor, or the bundled trainer (`TrainerExecutor`).
    public static func defaultExecutor(_ kind: ExecutorKind, _ dataFolder: DataFolder) throws -> UnitExecutor {
        switch kind {
        case .simulated:
            // HRTEM_SIMULATED_SECONDS: seconds per unit, so tests can kill a run mid-way.
            let seconds = ProcessInfo.processInfo.environment["HRTEM_SIMULATED_SECONDS"].flatMap(Double.init) ?? 0
            return SimulatedExecutor(modelsFolder: dataFolder.modelsFolder.appendingPathComponent("simulated"),
                                     secondsPerUnit: seconds)
        case .trainer: return TrainerExecutor(dataFolder: dataFolder)
        }
    }

    public var experimentsFolder: URL { dataFolder.url.appendingPathComponent("experiments") }
    public func folder(for plan: MatrixPlan) -> URL { experimentsFolder.appendingPathComponent(plan.id) }
    public func planFile(for plan: MatrixPlan) -> URL { folder(for: plan).appendingPathComponent("plan.json") }
    /// The plan's results folder in this data folder: what decides whether a unit is done.
    public func resultsFolder(for plan: MatrixPlan) -> JSONResultStore {
        JSONResultStore(folder: folder(for: plan).appendingPathComponent("results"))
    }
    /// Where a local run or `collect` records: the plan's results folder, and the catalog's
    /// `models` and `results` tables.
    /// - Throws: when the catalog cannot be opened.
    public func store(for plan: MatrixPlan) throws -> ResultStore {
        LayeredResultStore([resultsFolder(for: plan), CatalogResultStore(catalog: try CatalogStore(folder: dataFolder))])
    }
    public func defaultReportFolder(for plan: MatrixPlan) -> URL { folder(for: plan).appendingPathComponent("report") }

    /// What a local run produced.
    public struct LocalRun {
        public var results: MatrixResults
        public var summary: RunSummary?
        public var error: Error?
        public var reportFolder: URL
        public var reportFiles: [URL]
    }

    /// Runs every unfinished unit of `plan` here (resuming a previous run of the same plan),
    /// then writes the report, also when units failed (their cells show as pending).
    /// - Returns: the results; `error` holds a `MatrixRunError` when some units failed.
    /// - Throws: when the plan, the store or the report cannot be written or the executor is unavailable.
    public func runLocally(_ plan: MatrixPlan, jobs: Int, reportFolder: URL? = nil,
                           progress: (@Sendable (RunEvent) -> Void)? = nil) throws -> LocalRun {
        let planFile = planFile(for: plan)
        try plan.write(to: planFile)
        let store = try store(for: plan)
        let executor = try makeExecutor(plan.executor, dataFolder)
        var summary: RunSummary?
        var failure: Error?
        do {
            summary = try MatrixRunner(plan: plan, executor: executor, store: store, jobs: jobs, progress: progress).run()
        } catch let error as MatrixRunError {
            failure = error
            summary = error.summary
        }
        let results = try MatrixResults(plan: plan, store: store)
        let report = reportFolder ?? defaultReportFolder(for: plan)
        let files = try MatrixReport.write(results, to: report, planFile: planFile)
        return LocalRun(results: results, summary: summary, error: failure, reportFolder: report, reportFiles: files)
    }

    /// Writes the plan and its Slurm scripts into `folder`; the data folder is this workspace's.
    public func emitSlurm(_ plan: MatrixPlan, to folder: URL, options: SlurmOptions) throws -> SlurmJobFiles {
        var options = options
        if options.dataFolder == nil { options.dataFolder = dataFolder.url.path }
        return try SlurmEmitter.emit(plan, to: folder, options: options)
    }

    /// Runs unit `index` of the plan in `planFile`, recording into `resultsFolder` (default:
    /// `results/` beside the plan file) only, not the catalog: SQLite on shared cluster storage
    /// is not safe, so `collect` brings the results into the catalog. What each Slurm array task does.
    public func runUnit(planFile: URL, index: Int, resultsFolder: URL? = nil) throws -> (PlanUnit, UnitOutcome) {
        let plan = try MatrixPlan.read(from: planFile)
        let store = JSONResultStore(folder: resultsFolder ?? planFile.deletingLastPathComponent().appendingPathComponent("results"))
        let unit = try plan.unit(at: index)
        let runner = MatrixRunner(plan: plan, executor: try makeExecutor(plan.executor, dataFolder), store: store)
        return (unit, try runner.runUnit(at: index))
    }

    /// Gathers the results of the plan in `planFile` from `resultsFolder` (default: `results/`
    /// beside the plan) into this data folder's store for the plan, and writes the report into
    /// `reportFolder` (default: the plan's report folder in this data folder).
    public func collect(planFile: URL, resultsFolder: URL? = nil, reportFolder: URL? = nil) throws
        -> (results: MatrixResults, copied: Int, reportFolder: URL) {
        let plan = try MatrixPlan.read(from: planFile)
        let source = JSONResultStore(folder: resultsFolder ?? planFile.deletingLastPathComponent().appendingPathComponent("results"))
        let destination = try store(for: plan)
        let copied = try copyResults(of: plan, from: source, into: destination)
        try plan.write(to: self.planFile(for: plan))
        let results = try MatrixResults(plan: plan, store: destination)
        let report = reportFolder ?? defaultReportFolder(for: plan)
        try MatrixReport.write(results, to: report, planFile: planFile)
        return (results, copied, report)
    }
}

/// Dataset versions as plans see them.
public enum DatasetResolution {
    /// The version an argument names (`DatasetRegistry.locate`: a version folder, `NAME` or
    /// `NAME@PREFIX`), described for a plan.
    /// - Throws: `ExperimentError` naming the argument and what was wrong.
    public static func resolve(_ spec: String, in dataFolder: DataFolder) throws -> DatasetVersionRef {
        let trimmed = spec.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw ExperimentError("an empty dataset name in the list") }
        let catalog = FileManager.default.fileExists(atPath: dataFolder.catalogFile.path) ? try CatalogStore(folder: dataFolder) : nil
        let version: DatasetVersion
        do { version = try DatasetRegistry.locate(trimmed, in: dataFolder, store: catalog) } catch let error as DatasetError {
            throw ExperimentError(error.reason + (error.known.isEmpty ? "" : " (known: \(error.known.joined(separator: ", ")))"),
                                  subject: "dataset \(error.dataset ?? trimmed)")
        }
        return try describe(version, catalog: catalog)
    }

    /// A built version as a plan sees it; the axes' facts come from its frames' catalog rows.
    public static func describe(_ version: DatasetVersion, catalog: CatalogStore?) throws -> DatasetVersionRef {
        let info = version.info
        let frames = try catalog.map { catalog in
            try info.frames.compactMap { try catalog.frame(session: $0.session, file: $0.file) }
        } ?? []
        var metadata = frameSummary(frames)
        if metadata.isEmpty { metadata.append(MetadataEntry("frames", String(info.frameCount))) }
        metadata.append(MetadataEntry("patches", "\(info.patchCount) (\(info.patchSize) × \(info.patchSize) px)"))
        metadata.append(MetadataEntry("preprocessing", "\(info.recipe.rescale.rawValue), flat-field \(info.recipe.flatField ? "on" : "off")"))
        return DatasetVersionRef(id: info.versionId, name: info.name, folder: version.folder.path,
                                 foldCount: try version.folds().k, metadata: metadata)
    }
}

extension DatasetResolution {
    /// The key facts of a version's frames for the report's axes: the distinct values of
    /// material, particle size, dose and pixel scale over its frames' catalog rows (at most four
    /// each), then the frame count.
    static func frameSummary(_ frames: [FrameRecord]) -> [MetadataEntry] {
        guard !frames.isEmpty else { return [] }
        func number(_ value: Double) -> String {
            value == value.rounded() && abs(value) < 1e9 ? String(Int(value)) : "\(value)"
        }
        let facts: [(label: String, value: (FrameRecord) -> String?, unit: String)] = [
            ("material", { $0.material }, ""), ("size", { $0.particleSizeNm.map(number) }, " nm"),
            ("dose", { $0.dose.map(number) }, " e/Å²"), ("pixel scale", { $0.pixelScaleNm.map(number) }, " nm/px"),
        ]
        var entries: [MetadataEntry] = []
        for fact in facts {
            var values: [String] = []
            for text in frames.compactMap(fact.value) where !values.contains(text) { values.append(text) }
            guard !values.isEmpty else { continue }
            let shown = values.count > 4 ? Array(values.prefix(4)) + ["…"] : values
            entries.append(MetadataEntry(fact.label, shown.joined(separator: ", ") + fact.unit))
        }
        entries.append(MetadataEntry("frames", String(frames.count)))
        return entries
    }
}
