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

/// Finds dataset versions for `--datasets`: a path to a version folder, or (once the catalog's
/// dataset versions exist) a recipe name or NAME@VERSION.
public enum DatasetResolution {
    /// - Throws: `ExperimentError` naming the spec and what was wrong.
    public static func resolve(_ spec: String, in dataFolder: DataFolder) throws -> DatasetVersionRef {
        let trimmed = spec.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw ExperimentError("an empty dataset name in the list") }
        let candidates = [URL(fileURLWithPath: trimmed), dataFolder.datasetsFolder.appendingPathComponent(trimmed)]
        for url in candidates where isDirectory(url) && isVersionFolder(url) {
            if let version = try? DatasetVersion.open(at: url) {
                let catalog = FileManager.default.fileExists(atPath: dataFolder.catalogFile.path) ? try? CatalogStore(folder: dataFolder) : nil
                return describe(version, catalog: catalog)
            }
            return try versionFolder(url)
        }
        if let registered = try catalogVersion(trimmed, in: dataFolder) { return registered }
        if let byName = try latestVersionFolder(named: trimmed, in: dataFolder) { return try versionFolder(byName) }
        throw ExperimentError("dataset \"\(trimmed)\": no version folder found (looked for a folder with recipe.json or MANIFEST at \(trimmed) and under \(dataFolder.datasetsFolder.path)); build it with `hrtem dataset build \(trimmed)`")
    }

    /// A version registered in the catalog (issue 5's `DatasetRegistry`): NAME is its newest
    /// version, NAME@PREFIX the one version whose id starts with PREFIX. Nil when the catalog
    /// has no version of that name.
    static func catalogVersion(_ spec: String, in dataFolder: DataFolder) throws -> DatasetVersionRef? {
        guard FileManager.default.fileExists(atPath: dataFolder.catalogFile.path) else { return nil }
        let catalog = try CatalogStore(folder: dataFolder)
        let name = String(spec.split(separator: "@", maxSplits: 1)[0])
        guard !(try DatasetRegistry.versions(named: name, in: catalog)).isEmpty else { return nil }
        let version: DatasetVersion
        do { version = try DatasetRegistry.resolve(spec, in: catalog, dataFolder: dataFolder) } catch {
            throw ExperimentError("\(error)")
        }
        return describe(version, catalog: catalog)
    }

    /// A built version as a plan sees it; the axes' facts come from its frames' catalog rows.
    public static func describe(_ version: DatasetVersion, catalog: CatalogStore?) -> DatasetVersionRef {
        let info = version.info
        var frames: [[String: Any]] = []
        if let catalog {
            for frame in info.frames {
                guard let record = try? catalog.frame(session: frame.session, file: frame.file) else { continue }
                var facts: [String: Any] = [:]
                facts["material"] = record.material
                facts["size"] = record.particleSizeNm
                facts["dose"] = record.dose
                facts["pixel_scale"] = record.pixelScaleNm
                frames.append(facts)
            }
        }
        var metadata = frameSummary(["frames": frames])
        if metadata.isEmpty { metadata.append(MetadataEntry("frames", String(info.frameCount))) }
        metadata.append(MetadataEntry("patches", "\(info.patchCount) (\(info.patchSize) × \(info.patchSize) px)"))
        metadata.append(MetadataEntry("preprocessing", "\(info.recipe.rescale.rawValue), flat-field \(info.recipe.flatField ? "on" : "off")"))
        return DatasetVersionRef(id: info.versionId, name: info.name, folder: version.folder.standardizedFileURL.path,
                                 foldCount: (try? version.folds().k) ?? info.recipe.folds, metadata: metadata)
    }

    static func isDirectory(_ url: URL) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &directory) && directory.boolValue
    }

    static func isVersionFolder(_ url: URL) -> Bool {
        ["recipe.json", "MANIFEST", "folds.json"].contains {
            FileManager.default.fileExists(atPath: url.appendingPathComponent($0).path)
        }
    }

    /// `datasets/<name>/<version>/`: the only version, or the most recently modified one.
    static func latestVersionFolder(named name: String, in dataFolder: DataFolder) throws -> URL? {
        let parts = name.split(separator: "@", maxSplits: 1).map(String.init)
        let base = dataFolder.datasetsFolder.appendingPathComponent(parts[0])
        guard isDirectory(base) else { return nil }
        let versions = (try? FileManager.default.contentsOfDirectory(at: base, includingPropertiesForKeys: [.contentModificationDateKey]))?
            .filter { isDirectory($0) && isVersionFolder($0) && !$0.lastPathComponent.hasPrefix(".") } ?? []
        if parts.count == 2 {
            let matches = versions.filter { $0.lastPathComponent.hasPrefix(parts[1]) }
            guard matches.count == 1 else {
                throw ExperimentError("dataset \(name): \(matches.isEmpty ? "no" : "more than one") version starts with \(parts[1]) (versions: \(versions.map(\.lastPathComponent).sorted().joined(separator: ", ")))")
            }
            return matches[0]
        }
        func modified(_ url: URL) -> Date {
            (try? url.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
        }
        return versions.max { (modified($0), $0.lastPathComponent) < (modified($1), $1.lastPathComponent) }
    }

    /// Reads what a plan needs from a version folder: id, name, fold count, key metadata.
    /// The id is the recipe's `versionId`/`version`/`id` when given, else the folder's name.
    public static func versionFolder(_ url: URL) throws -> DatasetVersionRef {
        let folder = url.standardizedFileURL
        var recipe: [String: Any] = [:]
        let recipeFile = folder.appendingPathComponent("recipe.json")
        if let data = FileManager.default.contents(atPath: recipeFile.path) {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw FormatError(file: recipeFile.path, "not a JSON object")
            }
            recipe = object
        }
        let id = (recipe["versionId"] ?? recipe["version"] ?? recipe["id"]).flatMap { $0 as? String } ?? folder.lastPathComponent
        let name = (recipe["name"] as? String) ?? folder.deletingLastPathComponent().lastPathComponent
        var foldCount: Int?
        let foldsFile = folder.appendingPathComponent("folds.json")
        if let data = FileManager.default.contents(atPath: foldsFile.path),
           let object = try? JSONSerialization.jsonObject(with: data) {
            if let array = object as? [Any] { foldCount = array.count }
            else if let dictionary = object as? [String: Any] {
                if let folds = dictionary["folds"] as? [Any] { foldCount = folds.count }
                else if let k = (dictionary["k"] ?? dictionary["foldCount"] ?? dictionary["count"]) as? Int { foldCount = k }
            }
        }
        if foldCount == nil, let k = (recipe["folds"] as? Int) { foldCount = k }
        var metadata = frameSummary(recipe)
        for key in ["query", "where"] { if let value = recipe[key] as? String { metadata.append(MetadataEntry("query", value)); break } }
        if let patches = (recipe["patchCount"] ?? recipe["patch_count"]) as? Int { metadata.append(MetadataEntry("patches", String(patches))) }
        return DatasetVersionRef(id: id, name: name, folder: folder.path, foldCount: foldCount, metadata: metadata)
    }
}

extension DatasetResolution {
    /// The key facts of a version's frames for the report's axes: the distinct values of
    /// material, particle size, dose and pixel scale over the frames its recipe lists
    /// (`frames`: objects with those keys, in camelCase or snake_case).
    static func frameSummary(_ recipe: [String: Any]) -> [MetadataEntry] {
        guard let frames = (recipe["frames"] ?? recipe["inputs"]) as? [[String: Any]], !frames.isEmpty else { return [] }
        let facts: [(label: String, keys: [String], unit: String)] = [
            ("material", ["material"], ""), ("size", ["size", "particleSize", "particle_size"], " nm"),
            ("dose", ["dose"], " e/Å²"), ("pixel scale", ["pixelScale", "pixel_scale"], " nm/px"),
        ]
        var entries: [MetadataEntry] = []
        for fact in facts {
            var values: [String] = []
            for frame in frames {
                guard let raw = fact.keys.lazy.compactMap({ frame[$0] }).first else { continue }
                let text: String
                if let number = raw as? Double { text = number == number.rounded() && abs(number) < 1e9 ? String(Int(number)) : "\(number)" }
                else if let number = raw as? Int { text = String(number) }
                else if let string = raw as? String { text = string }
                else { continue }
                if !values.contains(text) { values.append(text) }
            }
            guard !values.isEmpty else { continue }
            let shown = values.count > 4 ? Array(values.prefix(4)) + ["…"] : values
            entries.append(MetadataEntry(fact.label, shown.joined(separator: ", ") + fact.unit))
        }
        entries.append(MetadataEntry("frames", String(frames.count)))
        return entries
    }
}
