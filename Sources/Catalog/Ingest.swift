import Foundation
import GRDB
import Micrograph

/// What `Ingester.ingest` did, for people and tests.
public struct IngestReport: Sendable, Equatable {
    /// A file ingest could not place, and why.
    public struct Unplaced: Sendable, Equatable {
        public var path: String
        public var reason: String
    }

    public var framesScanned = 0
    /// New frames (no catalog row before), by "session/file".
    public var framesAdded: [String] = []
    /// Frames whose row came from the metadata table and now have their file.
    public var framesJoined: [String] = []
    /// Frames whose file changed since the last ingest (size, time or content).
    public var framesChanged: [String] = []
    public var framesUnchanged = 0
    public var labelsAdded = 0
    public var labelsChanged = 0
    public var labelsUnchanged = 0
    public var unplaced: [Unplaced] = []
    public var bytesHashed: Int64 = 0
    /// How each frame's metadata was found: "table", "file name", "file tags" -> count.
    public var metadataSources: [String: Int] = [:]

    public var summary: String {
        let sources = metadataSources.keys.sorted().map { "\(metadataSources[$0]!) from \($0)" }.joined(separator: ", ")
        var lines = ["ingest: \(framesScanned) frame file(s): \(framesAdded.count) new, \(framesJoined.count) joined to the metadata table, "
                     + "\(framesChanged.count) changed, \(framesUnchanged) unchanged"
                     + (sources.isEmpty ? "" : " (metadata: \(sources))"),
                     "labels: \(labelsAdded) new, \(labelsChanged) changed, \(labelsUnchanged) unchanged"]
        if !unplaced.isEmpty {
            lines.append("could not place \(unplaced.count) file(s):")
            lines += unplaced.map { "  \($0.path): \($0.reason)" }
        }
        return lines.joined(separator: "\n")
    }
}

/// Walks a folder laid out like the NERSC mirror and records its frames and labels.
///
/// Layout: `<DIR>/<Folder>/<file>.dm3|dm4|tif` (the session is the folder path relative to
/// DIR, so a `Folder` containing `/` is a nested folder; files directly in DIR belong to the
/// session named after DIR itself) and `<DIR>/<Folder>/Labels/<stem>_label.png`. Formats are
/// recognized by content. Each frame's header is read (never its pixels), its content hashed
/// (SHA-256, streaming, files in parallel), and it is joined to its metadata: the imported
/// table's row for (session, file), else a unique not-yet-ingested row with the same file
/// name, else the study's file-name convention, else the file's own tags (DM magnification,
/// exposure, calibration). Frames and labels are written in one transaction per batch.
/// Re-ingesting is idempotent: a file whose path, size and modification time are unchanged is
/// not hashed again (`rehash` forces it); a changed file is re-read and reported.
public struct Ingester: Sendable {
    public var jobs: Int
    public var batchSize: Int
    public var rehash: Bool
    /// Where each frame's label lies: `{dir}` (the frame's folder), `{stem}` (its name without
    /// the extension) and `{name}` (its name) are replaced; nil is the study's layout,
    /// `{dir}/Labels/{stem}_label.png`. A label may be PNG, TIFF, NPY or any frame format.
    public var labelTemplate: String?
    /// Which values of a multi-class mask (category ids of a COCO file) are particle; nil:
    /// any non-zero value (every annotation).
    public var particleClasses: Set<Int>?
    /// Where masks rasterized from COCO annotation files are kept (content-addressed PNG);
    /// `hrtem ingest` passes the data folder's store.
    public var maskStore: URL?
    /// Tags that fill fields, besides `TagMapping.builtIn` (a user's mapping wins over the
    /// built-in one for the same field).
    public var tagMappings: [TagMapping] = []
    /// The lab's file-name convention; nil is the study's (`StudyFileName`).
    public var namePattern: NamePattern?

    public static let defaultLabelTemplate = "{dir}/Labels/{stem}_label.png"

    public init(jobs: Int = ProcessInfo.processInfo.activeProcessorCount, batchSize: Int = 64, rehash: Bool = false,
                labelTemplate: String? = nil, particleClasses: Set<Int>? = nil, maskStore: URL? = nil) {
        self.jobs = max(1, jobs)
        self.batchSize = max(1, batchSize)
        self.rehash = rehash
        self.labelTemplate = labelTemplate == Ingester.defaultLabelTemplate ? nil : labelTemplate
        self.particleClasses = particleClasses
        self.maskStore = maskStore
    }

    /// The label path `template` gives for a frame file.
    /// - Throws: `FormatError` (file = the template) when it names no frame part or an unknown one.
    public static func labelPath(_ template: String, frame: URL) throws -> URL {
        guard template.contains("{stem}") || template.contains("{name}") || template.lowercased().hasSuffix(".json") else {
            throw FormatError(file: template, "a label template needs {stem} or {name} (e.g. '{dir}/masks/{stem}.tif'), or names a COCO .json file")
        }
        let stem = frame.deletingPathExtension().lastPathComponent
        let path = template.replacingOccurrences(of: "{dir}", with: frame.deletingLastPathComponent().path)
            .replacingOccurrences(of: "{stem}", with: stem).replacingOccurrences(of: "{name}", with: frame.lastPathComponent)
        if let open = path.firstIndex(of: "{"), path[open...].contains("}") {
            throw FormatError(file: template, "unknown placeholder in the label template (known: {dir}, {stem}, {name})")
        }
        return URL(fileURLWithPath: path).standardizedFileURL
    }

    /// File times compared as whole microseconds (a Double would not survive JSON exactly).
    static func microseconds(_ seconds: Double) -> Int64 { Int64((seconds * 1e6).rounded()) }

    static let frameExtensions: Set<String> = ["dm3", "dm4", "tif", "tiff", "mrc", "mrcs", "ser", "emd"]
    /// Extensions a label's frame may have, in the order a stem is matched.
    static let frameSuffixes = [".dm3", ".dm4", ".tif", ".tiff", ".mrc", ".mrcs", ".ser", ".emd"]

    /// One file to ingest: where it is and the (session, file name) it is catalogued under.
    public struct IngestFile: Sendable {
        public var url: URL
        public var session: String
        public var fileName: String
        var size: Int64
        var modified: Double

        /// - Throws: `FormatError` when the file cannot be examined.
        public init(url: URL, session: String, fileName: String? = nil) throws {
            let values: URLResourceValues
            do { values = try url.resourceValues(forKeys: [.fileSizeKey, .contentModificationDateKey]) } catch {
                throw FormatError(file: url.path, "cannot examine: \(error.localizedDescription)")
            }
            self.init(url: url, session: session, fileName: fileName ?? url.lastPathComponent, size: Int64(values.fileSize ?? 0),
                      modified: values.contentModificationDate?.timeIntervalSince1970 ?? 0)
        }

        init(url: URL, session: String, fileName: String, size: Int64, modified: Double) {
            self.url = url; self.session = session; self.fileName = fileName; self.size = size; self.modified = modified
        }
    }

    /// The name `FetchFrames` (the mirrors helper) records downloads with.
    typealias FoundFile = IngestFile

    /// A label found through a template, with the frame it belongs to.
    struct TemplateLabel {
        var file: IngestFile
        var frameFileName: String
    }

    /// Writes a rasterized mask as a 0/255 PNG into `maskStore/<2 hex>/<sha256>.png`.
    func storeMask(_ mask: Raster<UInt8>, source: URL) throws -> URL {
        guard let maskStore else { throw FormatError(file: source.path, "COCO labels need a folder to keep their rasterized masks") }
        let temporary = maskStore.appendingPathComponent(".coco-\(UUID().uuidString).png")
        try writePNG(gray8: mask.map { $0 == 0 ? 0 : 255 }, to: temporary)
        defer { try? FileManager.default.removeItem(at: temporary) }
        let digest = try sha256Hex(fileAt: temporary)
        let destination = maskStore.appendingPathComponent(String(digest.prefix(2))).appendingPathComponent(digest + ".png")
        if !FileManager.default.fileExists(atPath: destination.path) {
            try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
            if rename(temporary.path, destination.path) != 0 {
                throw FormatError(file: destination.path, "cannot move the mask into the store: \(String(cString: strerror(errno)))")
            }
        }
        return destination
    }

    /// What reading one frame file gave (computed in parallel, written serially).
    struct ReadFrame {
        var file: IngestFile
        var header: MicrographHeader?
        var sha256: String?
        var error: String?
        var reused: Bool = false
    }

    /// - Throws: `FormatError` when `folder` is not a readable folder; `DatabaseError`.
    ///   Unreadable or unplaceable files do not throw: they are listed in the report.
    public func ingest(folder: URL, into store: CatalogStore, progress: ((String) -> Void)? = nil) throws -> IngestReport {
        let root = folder.standardizedFileURL.resolvingSymlinksInPath()
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw FormatError(file: folder.path, "not a folder")
        }
        let (frames, labels, skipped) = try scan(root)
        if let template = labelTemplate {
            let (templateFrames, templateLabels, more) = try applyTemplate(template, frames: frames, folderLabels: labels)
            var report = try ingest(frames: templateFrames, labels: [], into: store, progress: progress)
            try recordTemplateLabels(templateLabels, into: store, report: &report)
            let labelPaths = Set(templateLabels.map { $0.file.url.standardizedFileURL.path })
            report.unplaced = skipped.filter { !labelPaths.contains(URL(fileURLWithPath: $0.path).standardizedFileURL.path) } + more + report.unplaced
            return report
        }
        var report = try ingest(frames: frames, labels: labels, into: store, progress: progress)
        report.unplaced = skipped + report.unplaced
        return report
    }

    /// Pairs frames with the labels `template` names. Files in folders that hold such labels are
    /// not frames (a TIFF mask folder would otherwise be ingested as frames); those no frame
    /// names are listed as unplaced, as are PNG files the study's layout found in Labels folders.
    func applyTemplate(_ template: String, frames: [IngestFile], folderLabels: [IngestFile])
        throws -> (frames: [IngestFile], labels: [TemplateLabel], unplaced: [IngestReport.Unplaced]) {
        var labelFor = [String: (IngestFile, URL)]()
        var labelFolders = Set<String>()
        for frame in frames {
            let label = try Ingester.labelPath(template, frame: frame.url)
            labelFor[frame.url.standardizedFileURL.path] = (frame, label)
            if label.deletingLastPathComponent().path != frame.url.deletingLastPathComponent().standardizedFileURL.path {
                labelFolders.insert(label.deletingLastPathComponent().path)
            }
        }
        var kept = [IngestFile](), labels = [TemplateLabel](), unplaced = [IngestReport.Unplaced]()
        var named = Set<String>()
        for (_, label) in labelFor.values where FileManager.default.fileExists(atPath: label.path) { named.insert(label.path) }
        for frame in frames {
            let path = frame.url.standardizedFileURL.path
            if named.contains(path) { continue }
            if labelFolders.contains(frame.url.deletingLastPathComponent().standardizedFileURL.path) {
                unplaced.append(.init(path: frame.url.path, reason: "in a label folder, but no frame's label template (\(template)) names it"))
                continue
            }
            kept.append(frame)
            let label = labelFor[path]!.1
            if FileManager.default.fileExists(atPath: label.path), let file = try? IngestFile(url: label, session: frame.session) {
                labels.append(TemplateLabel(file: file, frameFileName: frame.fileName))
            }
        }
        for file in folderLabels where !named.contains(file.url.standardizedFileURL.path) {
            unplaced.append(.init(path: file.url.path, reason: "not named by the label template \(template)"))
        }
        return (kept, labels, unplaced)
    }

    /// Reads and records labels found through a template (their frames are already ingested).
    /// A COCO annotation file gives each frame the union of its image's annotations (of the
    /// particle categories when given), rasterized as pycocotools does and kept as a PNG in
    /// `maskStore`.
    func recordTemplateLabels(_ labels: [TemplateLabel], into store: CatalogStore, report: inout IngestReport) throws {
        var cocoFiles = [String: Result<COCOAnnotations, Error>]()
        for label in labels where label.file.url.pathExtension.lowercased() == "json" && cocoFiles[label.file.url.path] == nil {
            cocoFiles[label.file.url.path] = Result { try COCOAnnotations(contentsOf: label.file.url) }
        }
        for start in stride(from: 0, to: labels.count, by: batchSize) {
            let batch = Array(labels[start..<min(start + batchSize, labels.count)])
            let results = readInParallel(batch) { label -> (TemplateLabel, Raster<UInt8>?, String?, String?) in
                do {
                    if let coco = cocoFiles[label.file.url.path] {
                        let annotations = try coco.get()
                        guard let image = annotations.image(named: label.frameFileName) else {
                            throw FormatError(file: label.file.url.path, "no image with file_name '\(label.frameFileName)'")
                        }
                        let mask = try annotations.mask(for: image, categories: particleClasses)
                        let stored = try storeMask(mask, source: label.file.url)
                        var file = label.file
                        file.url = stored
                        return (TemplateLabel(file: file, frameFileName: label.frameFileName), mask, try sha256Hex(fileAt: stored), nil)
                    }
                    let mask = try readLabelMask(at: label.file.url, particleClasses: particleClasses)
                    return (label, mask, try sha256Hex(fileAt: label.file.url), nil)
                } catch {
                    return (label, nil, nil, "\(error)")
                }
            }
            try store.dbQueue.write { db in
                for (label, mask, digest, error) in results {
                    try recordLabel(label.file, frameFileName: label.frameFileName, mask: mask, sha256: digest, error: error, in: db, report: &report)
                }
            }
        }
    }

    /// Ingests given files wherever they lie (e.g. downloads in the content-addressed store):
    /// each frame under its (session, file name), each label (`<stem>_label.png` named by
    /// `fileName`) for the frame of the same stem in its session. Same rules as `ingest(folder:)`.
    public func ingest(frames: [IngestFile], labels: [IngestFile], into store: CatalogStore,
                       progress: ((String) -> Void)? = nil) throws -> IngestReport {
        var report = IngestReport()
        report.framesScanned = frames.count

        // Frames first (labels need their ids), in batches: read + hash in parallel, then one transaction.
        let known = try store.dbQueue.read { db in
            try FrameRecord.fetchAll(db, sql: "SELECT \(CatalogStore.frameColumns) FROM frames WHERE path IS NOT NULL")
        }
        var byPath = [String: FrameRecord]()
        for frame in known { if let path = frame.path { byPath[path] = frame } }
        var done = 0
        for start in stride(from: 0, to: frames.count, by: batchSize) {
            let batch = Array(frames[start..<min(start + batchSize, frames.count)])
            let results = readInParallel(batch) { file -> ReadFrame in
                if !rehash, let existing = byPath[file.url.path], existing.byteSize == file.size,
                   let facts = existing.facts.flatMap({ try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }),
                   (facts["mtime_us"] as? Int64) == Ingester.microseconds(file.modified), existing.sha256 != nil {
                    return ReadFrame(file: file, header: nil, sha256: existing.sha256, error: nil, reused: true)
                }
                do {
                    let header = try readMicrographHeader(at: file.url)
                    let digest = try sha256Hex(fileAt: file.url)
                    return ReadFrame(file: file, header: header, sha256: digest)
                } catch {
                    return ReadFrame(file: file, header: nil, sha256: nil, error: "\(error)")
                }
            }
            try store.dbQueue.write { db in
                for result in results { try record(result, in: db, report: &report) }
            }
            done += batch.count
            progress?("frames \(done)/\(frames.count)")
        }

        for start in stride(from: 0, to: labels.count, by: batchSize) {
            let batch = Array(labels[start..<min(start + batchSize, labels.count)])
            let results = readInParallel(batch) { file -> (IngestFile, Raster<UInt8>?, String?, String?) in
                do {
                    let mask = try readLabelMask(at: file.url, particleClasses: particleClasses)
                    return (file, mask, try sha256Hex(fileAt: file.url), nil)
                } catch {
                    return (file, nil, nil, "\(error)")
                }
            }
            try store.dbQueue.write { db in
                for (file, mask, digest, error) in results {
                    try recordLabel(file, mask: mask, sha256: digest, error: error, in: db, report: &report)
                }
            }
            progress?("labels \(min(start + batch.count, labels.count))/\(labels.count)")
        }
        return report
    }

    /// Finds frame and label files. Files that are neither are listed as unplaced.
    func scan(_ root: URL) throws -> (frames: [IngestFile], labels: [IngestFile], skipped: [IngestReport.Unplaced]) {
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey, .contentModificationDateKey],
                                                          options: [.skipsHiddenFiles]) else {
            throw FormatError(file: root.path, "cannot list the folder")
        }
        var frames = [IngestFile](), labels = [IngestFile](), skipped = [IngestReport.Unplaced]()
        let rootComponents = root.pathComponents
        for case let url as URL in walker {
            let values = try? url.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey, .contentModificationDateKey])
            guard values?.isRegularFile == true else { continue }
            let components = url.standardizedFileURL.pathComponents
            var folderComponents = Array(components.dropLast().dropFirst(rootComponents.count))
            let fileName = url.lastPathComponent
            let size = Int64(values?.fileSize ?? 0)
            let modified = values?.contentModificationDate?.timeIntervalSince1970 ?? 0
            if folderComponents.last == "Labels" {
                folderComponents.removeLast()
                let session = folderComponents.isEmpty ? root.lastPathComponent : folderComponents.joined(separator: "/")
                if fileName.lowercased().hasSuffix("_label.png") {
                    labels.append(IngestFile(url: url, session: session, fileName: fileName, size: size, modified: modified))
                } else {
                    skipped.append(.init(path: url.path, reason: "in a Labels folder but not named <stem>_label.png"))
                }
                continue
            }
            let session = folderComponents.isEmpty ? root.lastPathComponent : folderComponents.joined(separator: "/")
            // A TIA `.emi` holds the metadata of the `.ser` files beside it, read with them.
            if url.pathExtension.lowercased() == "emi" { continue }
            if Ingester.frameExtensions.contains(url.pathExtension.lowercased())
                || ((try? MicrographFormat.detect(fileAt: url)).map { $0 != .png } ?? false) {
                frames.append(IngestFile(url: url, session: session, fileName: fileName, size: size, modified: modified))
            } else {
                skipped.append(.init(path: url.path, reason: "not a frame (DM3/DM4/TIFF/MRC/SER/EMD) and not in a Labels folder"))
            }
        }
        frames.sort { ($0.session, $0.fileName) < ($1.session, $1.fileName) }
        labels.sort { ($0.session, $0.fileName) < ($1.session, $1.fileName) }
        return (frames, labels, skipped)
    }

    /// Runs `body` over `items` on up to `jobs` threads, keeping the order of `items`.
    func readInParallel<T, R>(_ items: [T], _ body: @escaping (T) -> R) -> [R] {
        var results = [R?](repeating: nil, count: items.count)
        let lock = NSLock()
        let workers = min(jobs, items.count)
        var next = 0
        concurrentPerform(iterations: workers) { _ in
            while true {
                lock.lock()
                let index = next
                next += 1
                lock.unlock()
                guard index < items.count else { return }
                let result = body(items[index])
                lock.lock()
                results[index] = result
                lock.unlock()
            }
        }
        return results.map { $0! }
    }

    func record(_ result: ReadFrame, in db: Database, report: inout IngestReport) throws {
        let file = result.file
        let key = "\(file.session)/\(file.fileName)"
        if let error = result.error {
            report.unplaced.append(.init(path: file.url.path, reason: error))
            return
        }
        let existing = try CatalogStore.frame(session: file.session, file: file.fileName, in: db)
        if result.reused, let existing {
            _ = existing
            report.framesUnchanged += 1
            return
        }
        guard let header = result.header, let digest = result.sha256 else { return }
        var frame: FrameRecord
        var source: String
        if let existing {
            frame = existing
            source = existing.metadataSource != nil ? "table" : (try? StudyFileName(parsing: file.fileName)) != nil ? "file name" : "file tags"
        } else if let candidate = try uniqueUningestedRow(fileName: file.fileName, in: db) {
            // The table names this file under another folder spelling; take its row.
            frame = candidate
            source = "table"
        } else {
            frame = FrameRecord(session: file.session, fileName: file.fileName)
            if let namePattern, namePattern.match(file.fileName) != nil {
                source = "file name"
            } else if namePattern == nil, let name = try? StudyFileName(parsing: file.fileName) {
                frame.material = name.material
                frame.magnificationKx = name.magnificationKx
                frame.doseRate = name.doseRate
                frame.exposureSeconds = name.exposureSeconds
                frame.dose = name.dose
                frame.date = name.date
                frame.support = name.support.map { $0 == "UTC" ? "UT Carbon" : $0 }
                source = "file name"
            } else if header.microscope.indicatedMagnification != nil || header.microscope.pixelSizeNM != nil
                        || header.microscope.exposureSeconds != nil {
                source = "file tags"
            } else {
                // Nothing refuses a readable frame: it is cataloged with what is known (format,
                // shape, hash, tags) and `summary --missing` shows what it lacks.
                source = "file"
            }
        }
        let filledFromTags = (frame.pixelScaleNm == nil, frame.magnificationKx == nil, frame.exposureSeconds == nil,
                              frame.dose == nil, frame.date == nil)
        // Facts the file itself knows fill what the table and the name leave open.
        if frame.pixelScaleNm == nil { frame.pixelScaleNm = header.microscope.pixelSizeNM }
        if frame.magnificationKx == nil, let magnification = header.microscope.indicatedMagnification {
            frame.magnificationKx = magnification / 1000
        }
        if frame.exposureSeconds == nil { frame.exposureSeconds = header.microscope.exposureSeconds }
        if frame.dose == nil { frame.dose = header.microscope.doseElectronsPerA2 }
        if frame.date == nil, let date = header.microscope.acquisitionDate { frame.date = StudyDate.iso(from: date) }

        let wasIngested = frame.sha256 != nil
        let changed = wasIngested && (frame.sha256 != digest || frame.path != file.url.path || frame.byteSize != file.size)
        frame.path = file.url.path
        frame.byteSize = file.size
        frame.sha256 = digest
        frame.format = header.format.rawValue
        frame.width = header.width
        frame.height = header.height
        frame.pixelType = header.pixelType.rawValue
        frame.ingestedAt = ISO8601DateFormatter().string(from: Date())
        frame.facts = Ingester.factsJSON(header, modified: file.modified, metadataFrom: source)
        let stored = try CatalogStore.upsertFrame(frame, in: db)
        if let frameId = stored.id {
            try recordFieldValues(frameId: frameId, fileName: file.fileName, header: header,
                                  studyName: source == "file name" && namePattern == nil, filledFromTags: filledFromTags, in: db)
        }
        report.bytesHashed += file.size
        report.metadataSources[source, default: 0] += 1
        if existing == nil && frame.metadataSource == nil {
            report.framesAdded.append(key)
        } else if !wasIngested {
            report.framesJoined.append(key)
        } else if changed {
            report.framesChanged.append(key)
        } else {
            report.framesUnchanged += 1
        }
    }

    /// Records where the frame's values came from and writes the fields its name (through
    /// `namePattern`) and its tags (`TagMapping.builtIn` and `tagMappings`) give, each with its
    /// source; `FrameValues.write` keeps values a higher-ranked source set.
    func recordFieldValues(frameId: Int64, fileName: String, header: MicrographHeader, studyName: Bool,
                           filledFromTags: (Bool, Bool, Bool, Bool, Bool), in db: Database) throws {
        let registry = try FieldRegistry.load(from: db)
        if studyName {
            let convention = ValueSource(.name, "the study's convention")
            for field in [QueryField.material, .magnification, .doseRate, .exposure, .dose, .date, .support]
            where try FrameValues.value(of: field, frameId: frameId, in: db) != nil {
                try FrameValues.noteSource(convention, of: field, frameId: frameId, in: db)
            }
        }
        let facts = header.microscope
        let tagFilled: [(Bool, QueryField, String?)] = [
            (filledFromTags.0, .pixelScale, facts.pixelSizeNM.map { _ in "calibration of the x axis" }),
            (filledFromTags.1, .magnification, facts.indicatedMagnification.map { _ in "Microscope Info.Indicated Magnification" }),
            (filledFromTags.2, .exposure, facts.exposureSeconds.map { _ in "exposure time" }),
            (filledFromTags.3, .dose, facts.doseElectronsPerA2.map { _ in "dose" }),
            (filledFromTags.4, .date, facts.acquisitionDate.map { _ in "acquisition date" }),
        ]
        for (wasMissing, field, tag) in tagFilled where wasMissing {
            if let tag, try FrameValues.value(of: field, frameId: frameId, in: db) != nil {
                try FrameValues.noteSource(ValueSource(.tag, tag), of: field, frameId: frameId, in: db)
            }
        }
        if let namePattern, let values = namePattern.match(fileName) {
            for (name, text) in values.sorted(by: { $0.key < $1.key }) {
                guard let field = registry.field(named: name), field.isBuiltIn ? FrameValues.writableColumn(field) != nil : true,
                      let value = QueryValue(parsing: text, as: field.kind) else { continue }
                try FrameValues.write(value, to: field, frameId: frameId, source: ValueSource(.name, namePattern.text), in: db)
            }
        }
        // The user's mappings first: the first tag found for a field is the one written.
        var written = Set<String>()
        for mapping in tagMappings + TagMapping.builtIn where !written.contains(mapping.field) {
            guard let field = registry.field(named: mapping.field), let (path, text) = mapping.value(in: header),
                  let value = QueryValue(parsing: text, as: field.kind) else { continue }
            written.insert(mapping.field)
            if field.isBuiltIn, FrameValues.writableColumn(field) == nil { continue }
            try FrameValues.write(value, to: field, frameId: frameId, source: ValueSource(.tag, path), in: db)
        }
        // Velox, TIA, MRC and EMD readers give the detector and the voltage among their facts,
        // not as DM tags.
        let fromFacts: [(String, QueryValue?, String)] = [
            ("camera", facts.detector.flatMap { $0.isEmpty ? nil : .text($0) }, "detector"),
            ("voltage", facts.voltage.map { .number($0 / 1000) }, "accelerating voltage"),
        ]
        for case let (name, value?, what) in fromFacts where !written.contains(name) {
            guard let field = registry.field(named: name), (try? FrameValues.check(value, for: field)) != nil else { continue }
            try FrameValues.write(value, to: field, frameId: frameId, source: ValueSource(.tag, what), in: db)
        }
    }

    func uniqueUningestedRow(fileName: String, in db: Database) throws -> FrameRecord? {
        let rows = try FrameRecord.fetchAll(db, sql: "SELECT \(CatalogStore.frameColumns) FROM frames WHERE file_name = ? AND sha256 IS NULL AND metadata_source IS NOT NULL LIMIT 2",
                                            arguments: [fileName])
        return rows.count == 1 ? rows[0] : nil
    }

    func recordLabel(_ file: IngestFile, frameFileName: String? = nil, mask: Raster<UInt8>?, sha256: String?, error: String?,
                     in db: Database, report: inout IngestReport) throws {
        if let error {
            report.unplaced.append(.init(path: file.url.path, reason: error))
            return
        }
        guard let mask, let sha256 else { return }
        let stem = String(file.fileName.dropLast("_label.png".count))
        let names = frameFileName.map { [$0] } ?? Ingester.frameSuffixes.map { stem + $0 }
        let candidates = try FrameRecord.fetchAll(
            db, sql: "SELECT \(CatalogStore.frameColumns) FROM frames WHERE session = ? AND file_name IN (\(names.map { _ in "?" }.joined(separator: ", ")))",
            arguments: StatementArguments([file.session] + names))
        guard let frame = candidates.min(by: { a, b in
            (names.firstIndex(of: a.fileName) ?? names.count) < (names.firstIndex(of: b.fileName) ?? names.count)
        }), let frameId = frame.id else {
            report.unplaced.append(.init(path: file.url.path, reason: "no frame '\(stem).dm3|dm4|tif|mrc|ser|emd' in session '\(file.session)'"))
            return
        }
        if let width = frame.width, let height = frame.height, width != mask.width || height != mask.height {
            report.unplaced.append(.init(path: file.url.path,
                                         reason: "label is \(mask.width) x \(mask.height) but its frame is \(width) x \(height)"))
            return
        }
        let particles = mask.pixels.reduce(0) { $0 + Int($1) }
        let existing = try LabelRecord.filter(Column("frame_id") == frameId && Column("source") == "png").fetchOne(db)
        if let existing, existing.sha256 == sha256, existing.path == file.url.path {
            report.labelsUnchanged += 1
            return
        }
        // "png" is the source of every label ingest finds beside its frame (whatever its format).
        let format = ((try? MicrographFormat.detect(fileAt: file.url))?.rawValue) ?? (file.url.pathExtension.lowercased() == "npy" ? "npy" : "png")
        try CatalogStore.upsertLabel(LabelRecord(frameId: frameId, source: "png", path: file.url.path, sha256: sha256, format: format,
                                                 width: mask.width, height: mask.height, particlePixels: particles), in: db)
        if existing == nil { report.labelsAdded += 1 } else { report.labelsChanged += 1 }
    }

    /// The `frames.facts` JSON: what the file says (microscope facts, calibrations, layout,
    /// other images, every tag as text) plus the file time ingest compares on the next run.
    static func factsJSON(_ header: MicrographHeader, modified: Double, metadataFrom: String) -> String {
        var microscope = [String: Any]()
        let facts = header.microscope
        if let v = facts.indicatedMagnification { microscope["indicated_magnification"] = v }
        if let v = facts.voltage { microscope["voltage_v"] = v }
        if let v = facts.exposureSeconds { microscope["exposure_s"] = v }
        if let v = facts.acquisitionDate { microscope["acquisition_date"] = v }
        if let v = facts.acquisitionTime { microscope["acquisition_time"] = v }
        if let v = facts.pixelSizeNM { microscope["pixel_size_nm"] = v }
        if let v = facts.pixelUnit { microscope["pixel_unit"] = v }
        if let v = facts.detector { microscope["detector"] = v }
        if let v = facts.doseElectronsPerA2 { microscope["dose_e_per_a2"] = v }
        if let v = facts.title { microscope["title"] = v }
        var tags = [String: String]()
        for (path, value) in header.tags.flattened() { tags[path] = value.summary }
        let object: [String: Any] = [
            "mtime_us": microseconds(modified),
            "metadata_from": metadataFrom,
            "shape": header.shape,
            "byte_order": header.byteOrder.rawValue,
            "data_offset": header.dataOffset as Any? ?? NSNull(),
            "image_index": header.imageIndex,
            "calibrations": header.calibrations.map { ["scale": $0.scale, "origin": $0.origin, "unit": $0.unit] },
            "microscope": microscope,
            "other_images": header.otherImages.map { ["index": $0.index, "shape": $0.shape, "pixel_type": $0.pixelType, "note": $0.note] },
            "tags": tags,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
