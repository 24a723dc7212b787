import ArgumentParser
import Catalog
import Foundation
import Mirrors

struct LabelboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "labelbox",
        abstract: "Work with Labelbox exports.",
        subcommands: [LabelboxImportCommand.self])
}

struct LabelboxImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a Labelbox NDJSON export as labels of catalog frames.",
        discussion: """
        Each data row's external_id (or global key, '<Folder>/<file>' when a file name is in
        several sessions) names the frame. Masks are read from local files under --masks
        (default: the export's folder): <feature_id>.png or the mask URL's file name; composite
        masks use their color_rgb. With LABELBOX_API_KEY set, masks not found locally are
        downloaded from their URLs (the key is sent only to labelbox.com, or to the server in
        HRTEM_LABELBOX_URL), with retries, into the data folder's store. Labelbox IDs are kept in
        the catalog; URLs and the key never are. An expired URL (401, 403, 410) stops the import
        before anything is written: export again. Mask paths that are absolute or contain ../
        are refused. Rows that cannot be placed are listed.

        Examples:
          hrtem labelbox import export.ndjson --masks masks/
          LABELBOX_API_KEY=... hrtem labelbox import export.ndjson
        """)

    @OptionGroup var data: DataOptions

    @Argument(help: "The NDJSON export.")
    var file: String

    @Option(help: "Folder holding the mask PNGs (default: the export's folder).")
    var masks: String?

    @OptionGroup var transfer: TransferOptions

    func validate() throws { try transfer.validate() }

    func run() throws {
        let url = URL(fileURLWithPath: file)
        let bytes: Data
        do { bytes = try Data(contentsOf: url) } catch {
            throw ValidationError("cannot read \(file): \(error.localizedDescription)")
        }
        let store = try CatalogStore(folder: data.folder)
        let fetcher = LabelboxMaskFetcher.fromEnvironment(ProcessInfo.processInfo.environment,
                                                          downloader: transfer.downloader(for: data.folder))
        let importer = LabelboxImporter(dataFolder: data.folder,
                                        masksFolder: masks.map { URL(fileURLWithPath: $0) } ?? url.deletingLastPathComponent(),
                                        maskFetcher: fetcher)
        let report = try importer.importExport(bytes, source: url.lastPathComponent, into: store)
        print(report.summary)
    }
}
