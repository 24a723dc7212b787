import ArgumentParser
import Catalog
import Foundation
import Micrograph

struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Index a local folder of frames and labels (laid out like the NERSC mirror).",
        discussion: """
        Layout: DIR/<Folder>/<file>.dm3|dm4|tif and DIR/<Folder>/Labels/<stem>_label.png; the
        session is the folder path under DIR. Only headers are read; every file is hashed
        (SHA-256) in parallel. Each frame joins its row of the imported metadata table, else the
        study's file-name convention, else its own DM tags. Re-running is idempotent; changed
        files are noticed and re-read. Files that cannot be placed are listed, with the reason.
        No readable frame is refused for missing metadata: it is cataloged with its format,
        shape, hash, calibration and tags (`hrtem summary --missing` lists the gaps).

        Fields come from the table, else the file name (--name-pattern, default the study's
        convention), else the tags: voltage, camera, binning, operator and specimen (Session
        Info), stage tilt and acquisition time besides pixel size, magnification, exposure and
        date; --tag 'path=field' adds a tag ('ImageTags.' paths are under the frame's image).

        Frames may be DM3/DM4, TIFF, MRC, TIA SER (metadata from the EMI beside it) or Velox and
        Berkeley EMD, recognized by content. --labels names each frame's label through a
        template ({dir}: the frame's folder, {stem}: its name without extension, {name}: its
        name); a label may be PNG, TIFF, NPY or any frame format, or a COCO annotation file
        ('{dir}/instances.json': each frame's image, its polygons and RLE masks rasterized as
        pycocotools does). A mask pixel is particle when it is non-zero, or with
        --particle-classes when its value (a COCO category id) is one of those classes.

        Examples:
          hrtem import-metadata Dataset_metadata.csv && hrtem ingest /data/hrtem-generalization
          hrtem ingest --jobs 8 synthetic-data
          hrtem ingest lab-data --labels '{dir}/masks/{stem}.tif' --particle-classes 2,3
          hrtem ingest lab-data --labels '{dir}/annotations/instances.json' --particle-classes 1
          hrtem ingest lab-data --name-pattern '{date:yyyyMMdd}_{material}_{defocus}nm_{index}'
          hrtem ingest lab-data --tag 'ImageTags.Microscope Info.Stage Position.Stage Beta=tilt_beta'
        """)

    @OptionGroup var data: DataOptions

    @Argument(help: "The folder to ingest.")
    var folder: String

    @Option(help: "Files read and hashed in parallel (default: the number of cores).")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Files per catalog transaction.")
    var batch: Int = 64

    @Flag(help: "Hash every file again even when its size and modification time are unchanged.")
    var rehash = false

    @Option(help: "Where each frame's label lies (default '{dir}/Labels/{stem}_label.png').")
    var labels: String?

    @Option(help: "Mask values that are particle, comma-separated (default: any non-zero value).")
    var particleClasses: String?

    @Option(help: "The lab's file-name convention, e.g. '{date:yyyyMMdd}_{material}_{magnification}kx_{index}' (default: the study's).")
    var namePattern: String?

    @Option(help: "A tag that fills a field, 'tag path=field' (repeatable).")
    var tag: [String] = []

    func validate() throws {
        do {
            if let namePattern { _ = try NamePattern(namePattern) }
            for mapping in tag { _ = try TagMapping(parsing: mapping) }
        } catch { throw ValidationError("\(error)") }
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        if let labels, !labels.contains("{stem}") && !labels.contains("{name}") && !labels.lowercased().hasSuffix(".json") {
            throw ValidationError("--labels needs {stem} or {name}, e.g. '{dir}/masks/{stem}.tif', or names a COCO .json file")
        }
        _ = try classes()
    }

    func classes() throws -> Set<Int>? {
        guard let particleClasses else { return nil }
        let values = particleClasses.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
            throw ValidationError("--particle-classes takes integers separated by commas, e.g. 1,3 (got '\(particleClasses)')")
        }
        return Set(values.map { $0! })
    }

    func run() throws {
        let store = try CatalogStore(folder: data.folder)
        let start = Date()
        var ingester = try Ingester(jobs: jobs, batchSize: batch, rehash: rehash, labelTemplate: labels, particleClasses: classes(),
                                maskStore: data.folder.storeFolder.appendingPathComponent("masks"))
        ingester.namePattern = try namePattern.map(NamePattern.init)
        ingester.tagMappings = try tag.map(TagMapping.init(parsing:))
        let registry = try store.fieldRegistry()
        let named = (ingester.namePattern?.fieldNames ?? []) + ingester.tagMappings.map(\.field)
        for name in named where registry.field(named: name) == nil {
            throw ValidationError("unknown field '\(name)' in --name-pattern or --tag; add it with `hrtem field add \(name) --type ...` "
                                  + "(known: \(registry.names.joined(separator: ", ")))")
        }
        let report = try ingester
            .ingest(folder: URL(fileURLWithPath: folder), into: store) { line in
                FileHandle.standardError.write(Data("\(line)\n".utf8))
            }
        print(report.summary)
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "hashed %.1f MB in %.2f s", Double(report.bytesHashed) / 1e6, seconds))
    }
}

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print everything the catalog knows about one frame, DM tags included.",
        discussion: """
        FRAME is a frame id, 'session/file name', a file name found in one session only, or
        the path of an ingested file. The path of a file not in the catalog (DM3/DM4, TIFF,
        PNG, MRC, SER with its EMI, Velox or Berkeley EMD) prints what the file says about
        itself; --signal picks an image signal of an EMD file by index (from 0) or title.

        Examples:
          hrtem show 20221109_Au_UTC_330kx_2640e_0p1596s_03.dm3
          hrtem show '2022_11_09 Au on UTC/20221109_Au_UTC_330kx_2640e_0p1596s_03.dm3'
          hrtem show 17
          hrtem show velox/2024-03-01_HAADF.emd --signal HAADF
        """)

    @OptionGroup var data: DataOptions

    @Argument(help: "The frame.")
    var frame: String

    @Option(help: "For a file not in the catalog: the image signal of an EMD file (index from 0, or title).")
    var signal: String?

    func run() throws {
        let store = try CatalogStore(folder: data.folder)
        let record: FrameRecord
        do {
            record = try FrameDetails.resolve(frame, in: store)
        } catch {
            let url = URL(fileURLWithPath: frame)
            guard FileManager.default.fileExists(atPath: url.path) else { throw error }
            print(try FrameDetails.renderFile(at: url, selecting: ImageSelection(signal: signal, plane: nil)), terminator: "")
            return
        }
        print(FrameDetails.render(record, labels: try store.labels(frameId: record.id!)), terminator: "")
        let entries = try store.dbQueue.read { db in
            try FrameValues.entries(frameId: record.id!, registry: FieldRegistry.load(from: db), in: db)
        }
        print(FrameDetails.renderValues(entries), terminator: "")
    }
}
