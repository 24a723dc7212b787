import Foundation
import GRDB
import Micrograph
import Preprocessing

/// The outcome of `DatasetMaterializer.build`.
public struct DatasetBuildResult: Sendable {
    public var version: DatasetVersion
    /// True when the same version was already built and registered (nothing was done).
    public var reused: Bool
}

/// One input of a build: where its files are on this machine and what they must hash to.
public struct DatasetInput: Sendable {
    public var frame: FrameRecord
    public var frameURL: URL
    public var labelURL: URL
    public var resolved: ResolvedFrame
}

/// Turns a recipe into an immutable dataset version folder (see `DatasetVersion` for the layout).
///
/// Deterministic: the same recipe over the same inputs gives the same version id and the same
/// bytes, whatever `jobs` is. Streaming: labels are read first (cheap) to count the patches,
/// then frames are preprocessed `jobs` at a time in the stored (shuffled) order and their
/// patches appended to the arrays, so memory stays at a few frames whatever the dataset size.
/// Crash-safe: the build happens in `tmp/dataset-<id>-<pid>`, is published by one rename to
/// `datasets/<name>/<id>` and registered in one transaction; leftovers of an interrupted build
/// (a dead builder's temporary folder, a published but unregistered folder) are removed by the
/// next build.
public enum DatasetMaterializer {
    /// Binds a recipe to its inputs. Nothing is read but the catalog and the label hashes that
    /// the catalog lacks.
    /// - Throws: `DatasetError` listing every missing frame or label with the fetch command that
    ///   would get them, before any work is done.
    public static func resolve(_ recipe: DatasetRecipe, store: CatalogStore, dataFolder: DataFolder) throws
        -> (ResolvedRecipe, [DatasetInput]) {
        let query = try recipe.validate(fields: store.fieldRegistry())
        let frames = try store.frames(matching: query)
        guard !frames.isEmpty else { throw DatasetError(dataset: recipe.name, "the query selects no frame: \(recipe.query)") }
        var inputs = [DatasetInput]()
        var missing = [String]()
        func localURL(_ path: String) -> URL {
            path.hasPrefix("/") ? URL(fileURLWithPath: path) : dataFolder.url.appendingPathComponent(path)
        }
        for frame in frames {
            let name = "\(frame.session)/\(frame.fileName)"
            guard let path = frame.path, let sha = frame.sha256, FileManager.default.fileExists(atPath: localURL(path).path) else {
                missing.append("\(name): frame not on disk"); continue
            }
            let labels = try store.labels(frameId: frame.id!).filter { $0.path != nil }.sorted { a, b in
                (a.source == "png" ? 0 : 1, a.source) < (b.source == "png" ? 0 : 1, b.source)
            }
            guard let label = labels.first(where: { FileManager.default.fileExists(atPath: localURL($0.path!).path) }) else {
                missing.append("\(name): label missing"); continue
            }
            let labelURL = localURL(label.path!)
            let labelSha = try label.sha256 ?? sha256Hex(fileAt: labelURL)
            inputs.append(DatasetInput(frame: frame, frameURL: localURL(path), labelURL: labelURL,
                                       resolved: ResolvedFrame(session: frame.session, file: frame.fileName,
                                                               sha256: sha, labelSha256: labelSha)))
        }
        if !missing.isEmpty {
            let shown = missing.prefix(25).map { "  " + $0 }.joined(separator: "\n")
            let more = missing.count > 25 ? "\n  ... and \(missing.count - 25) more" : ""
            let quoted = "'" + recipe.query.replacingOccurrences(of: "'", with: "'\\''") + "'"
            throw DatasetError(dataset: recipe.name, """
                \(missing.count) of \(frames.count) inputs are missing; nothing was built:
                \(shown)\(more)
                Get them with:
                  hrtem fetch --where \(quoted) --labels
                """)
        }
        return (ResolvedRecipe(formatVersion: datasetFormatVersion, recipe: recipe, frames: inputs.map(\.resolved)), inputs)
    }

    /// Builds (or finds already built) the version a recipe resolves to, and registers it.
    /// - Parameters:
    ///   - jobs: frames preprocessed at once (memory is about 150 MB per 4096^2 frame in flight).
    ///   - log: progress lines for people.
    /// - Throws: `DatasetError` (missing inputs, a label whose size differs from its frame),
    ///   `FormatError` from the readers, file-system and database errors. Nothing is registered
    ///   and no folder is published unless the whole build succeeded.
    public static func build(_ recipe: DatasetRecipe, store: CatalogStore, dataFolder: DataFolder,
                             jobs: Int = min(4, ProcessInfo.processInfo.activeProcessorCount),
                             log: (String) -> Void = { _ in }) throws -> DatasetBuildResult {
        let (resolved, inputs) = try resolve(recipe, store: store, dataFolder: dataFolder)
        let versionId = try resolved.versionId()
        return try publish(recipe, versionId: versionId, store: store, dataFolder: dataFolder, log: log) { folder in
            try write(resolved: resolved, inputs: inputs, versionId: versionId, into: folder, jobs: jobs, log: log)
        }
    }

    /// Publishes a dataset version, the one way every builder does it (this materializer, the
    /// HDF5 importer): a version already built and registered is reused; otherwise leftovers of
    /// an interrupted build are removed, `write` fills a temporary folder and returns what
    /// `recipe.json` says, `MANIFEST` is written, the folder is renamed to
    /// `datasets/<name>/<id>` and registered in one transaction. Nothing is registered and no
    /// folder is published unless `write` succeeded.
    static func publish(_ recipe: DatasetRecipe, versionId: String, store: CatalogStore, dataFolder: DataFolder,
                        log: (String) -> Void, write: (URL) throws -> DatasetVersionInfo) throws -> DatasetBuildResult {
        let fm = FileManager.default
        let finalFolder = dataFolder.datasetsFolder.appendingPathComponent(recipe.name).appendingPathComponent(versionId)
        try removeStaleBuilds(in: dataFolder)
        let registered = try DatasetRegistry.versions(named: recipe.name, in: store).first { $0.versionId == versionId }
        if registered != nil, fm.fileExists(atPath: VersionFolder(finalFolder).manifestFile.path) {
            log("\(recipe.name)@\(versionId.prefix(12)) is already built")
            return DatasetBuildResult(version: try DatasetVersion.open(at: finalFolder), reused: true)
        }
        if registered != nil {   // registered but its folder is gone: forget it, rebuild
            try store.dbQueue.write { db in
                try db.execute(sql: "DELETE FROM dataset_versions WHERE version_id = ?", arguments: [versionId])
            }
        }
        if fm.fileExists(atPath: finalFolder.path) {   // published by a build killed before it registered
            try fm.removeItem(at: finalFolder)
        }
        let temporary = dataFolder.temporaryFolder
            .appendingPathComponent("dataset-\(versionId.prefix(16))-\(ProcessInfo.processInfo.processIdentifier)")
        try? fm.removeItem(at: temporary)
        try fm.createDirectory(at: temporary, withIntermediateDirectories: true)
        do {
            let info = try write(temporary)
            let files = VersionFolder(temporary)
            var manifest = ""
            for name in VersionFolder.dataFiles {
                manifest += "\(try sha256Hex(fileAt: temporary.appendingPathComponent(name)))  \(name)\n"
            }
            try writeFileAtomically(Data(manifest.utf8), to: files.manifestFile)
            try fm.createDirectory(at: finalFolder.deletingLastPathComponent(), withIntermediateDirectories: true)
            try fm.moveItem(at: temporary, to: finalFolder)
            let manifestHash = try sha256Hex(fileAt: VersionFolder(finalFolder).manifestFile)
            let relative = "datasets/\(recipe.name)/\(versionId)"
            try store.dbQueue.write { db in
                let recipeId = try RecipeStore.save(definition: try recipe.canonicalText(), name: recipe.name, in: db)
                try db.execute(sql: """
                    INSERT INTO dataset_versions (recipe_id, version_id, folder, frame_count, patch_count, manifest_sha256)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """, arguments: [recipeId, versionId, relative, info.frameCount, info.patchCount, manifestHash])
            }
            log("built \(recipe.name)@\(versionId.prefix(12)): \(info.frameCount) frames, \(info.patchCount) patches -> \(finalFolder.path)")
            return DatasetBuildResult(version: DatasetVersion(files: VersionFolder(finalFolder), info: info), reused: false)
        } catch {
            try? fm.removeItem(at: temporary)
            throw error
        }
    }

    /// Removes temporary build folders whose builder process is gone, and published version
    /// folders the catalog never registered.
    public static func removeStaleBuilds(in dataFolder: DataFolder) throws {
        let fm = FileManager.default
        if let entries = try? fm.contentsOfDirectory(atPath: dataFolder.temporaryFolder.path) {
            for entry in entries where entry.hasPrefix("dataset-") {
                if let pid = Int32(entry.split(separator: "-").last ?? ""), pid > 0, kill(pid, 0) == 0 || errno == EPERM { continue }
                try? fm.removeItem(at: dataFolder.temporaryFolder.appendingPathComponent(entry))
            }
        }
    }

    private final class BatchResults: @unchecked Sendable {
        // Sendable by hand: the worker threads write their slots only while holding `lock`; the
        // arrays are read after `concurrentPerform` returns, when no worker is left.
        let lock = NSLock()
        var images: [[Float]]
        var labels: [[UInt8]]
        var errors: [Error?]
        init(count: Int) {
            images = Array(repeating: [], count: count)
            labels = Array(repeating: [], count: count)
            errors = Array(repeating: nil, count: count)
        }
    }

    static func write(resolved: ResolvedRecipe, inputs: [DatasetInput], versionId: String, into folder: URL,
                      jobs: Int, log: (String) -> Void) throws -> DatasetVersionInfo {
        let recipe = resolved.recipe
        let patch = recipe.patch
        let started = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> String { String(format: "%.1f s", Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9) }
        let order = studyShuffle(count: inputs.count, seed: UInt32(recipe.seed))
        let stored = order.map { inputs[$0] }

        // pass 1: labels -> kept patches of each frame (in stored order)
        let keptResults = BatchResults(count: stored.count)
        var kept = [[KeptPatch]](repeating: [], count: stored.count)
        let keptLock = NSLock()
        concurrentPerform(iterations: stored.count) { i in
            do {
                let label = try readLabelMask(at: stored[i].labelURL)
                let found = keptPatches(label: label, patch: patch, stride: recipe.stride, minParticlePixels: recipe.minParticlePixels)
                keptLock.lock(); kept[i] = found; keptLock.unlock()
            } catch {
                keptResults.lock.lock(); keptResults.errors[i] = error; keptResults.lock.unlock()
            }
        }
        if let error = keptResults.errors.compactMap({ $0 }).first { throw error }
        let patchCount = kept.reduce(0) { $0 + $1.count }
        log("\(stored.count) frames, \(patchCount) patches of \(patch) x \(patch) (labels read in \(elapsed()))")

        // pass 2: frames, `jobs` at a time, appended in stored order
        let imagesURL = folder.appendingPathComponent(VersionFolder.imagesName), labelsURL = folder.appendingPathComponent(VersionFolder.labelsName)
        for (url, pixelType) in [(imagesURL, PixelType.float32), (labelsURL, .uint8)] {
            let header = Data(npyHeader(shape: [patchCount, patch, patch], pixelType: pixelType))
            guard FileManager.default.createFile(atPath: url.path, contents: header) else {
                throw DatasetError("\(url.path): cannot create the file")
            }
        }
        let imagesHandle = try FileHandle(forWritingTo: imagesURL), labelsHandle = try FileHandle(forWritingTo: labelsURL)
        defer { try? imagesHandle.close(); try? labelsHandle.close() }
        try imagesHandle.seekToEnd(); try labelsHandle.seekToEnd()
        let delay = ProcessInfo.processInfo.environment["HRTEM_DATASET_BUILD_DELAY_MS"].flatMap(Int.init) ?? 0
        let options = recipe.framePreprocessing
        var start = 0
        let batchSize = max(1, jobs)
        while start < stored.count {
            let batch = Array(start..<min(stored.count, start + batchSize))
            let results = BatchResults(count: batch.count)
            concurrentPerform(iterations: batch.count) { b in
                let i = batch[b]
                do {
                    if kept[i].isEmpty { return }
                    let input = stored[i]
                    let frame = try readFrame(at: input.frameURL).raster
                    let label = try readLabelMask(at: input.labelURL)
                    guard frame.width == label.width, frame.height == label.height else {
                        throw DatasetError("\(input.labelURL.path): label is \(label.width) x \(label.height) but its frame \(input.frameURL.path) is \(frame.width) x \(frame.height)")
                    }
                    let image = preprocessFrame(frame, options).image
                    var imagePatches = [Float](), labelPatches = [UInt8]()
                    imagePatches.reserveCapacity(kept[i].count * patch * patch)
                    labelPatches.reserveCapacity(kept[i].count * patch * patch)
                    for k in kept[i] {
                        appendPatch(image, at: k.origin, patch: patch, to: &imagePatches)
                        appendPatch(label, at: k.origin, patch: patch, to: &labelPatches)
                    }
                    for j in labelPatches.indices where labelPatches[j] != 0 { labelPatches[j] = 1 }
                    results.lock.lock(); results.images[b] = imagePatches; results.labels[b] = labelPatches; results.lock.unlock()
                } catch {
                    results.lock.lock(); results.errors[b] = error; results.lock.unlock()
                }
            }
            if let error = results.errors.compactMap({ $0 }).first { throw error }
            for b in batch.indices {
                results.images[b].withUnsafeBytes { imagesHandle.write(Data($0)) }
                labelsHandle.write(Data(results.labels[b]))
            }
            if delay > 0 { usleep(UInt32(delay * 1000)) }
            start += batchSize
            log("  \(min(start, stored.count))/\(stored.count) frames (\(elapsed()))")
        }
        try imagesHandle.synchronize(); try labelsHandle.synchronize()

        // patches.csv, folds.json, recipe.json, MANIFEST
        var csv = "patch,session,file,row,column,particle_pixels\n"
        var groupsByFrame = [String](), groupsBySession = [String]()
        var index = 0
        for (i, input) in stored.enumerated() {
            for k in kept[i] {
                csv += "\(index),\(csvField(input.frame.session)),\(csvField(input.frame.fileName)),\(k.origin.row),\(k.origin.column),\(k.particlePixels)\n"
                groupsByFrame.append("\(input.frame.session)/\(input.frame.fileName)")
                groupsBySession.append(input.frame.session)
                index += 1
            }
        }
        try writeSynced(Data(csv.utf8), to: folder.appendingPathComponent(VersionFolder.patchesName))
        let rule = recipe.groupFoldsBy.rule
        let plan: FoldPlan
        switch rule {
        case .study: plan = studyFolds(count: patchCount, k: recipe.folds)
        case .frame: plan = try groupedFolds(groups: groupsByFrame, k: recipe.folds, rule: .frame)
        case .session: plan = try groupedFolds(groups: groupsBySession, k: recipe.folds, rule: .session)
        }
        try writeSynced(plan.jsonBytes(), to: folder.appendingPathComponent(VersionFolder.foldsName))
        let info = DatasetVersionInfo(versionId: versionId, name: recipe.name, query: recipe.query,
                                      formatVersion: resolved.formatVersion, recipe: recipe, frames: resolved.frames,
                                      frameOrder: order, frameCount: inputs.count, patchCount: patchCount,
                                      patchSize: patch, foldRule: rule)
        try writeSynced(try CanonicalJSON.pretty(info), to: folder.appendingPathComponent(VersionFolder.recipeName))
        log("  written and hashed (\(elapsed()))")
        return info
    }

    private static func writeSynced(_ data: Data, to url: URL) throws {
        try writeFileAtomically(data, to: url)
    }
}
