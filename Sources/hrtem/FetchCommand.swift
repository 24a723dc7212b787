import ArgumentParser
import Catalog
import Foundation
import Micrograph
import Mirrors

struct FetchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Download exactly the frames (and labels) a query selects, verified and resumable, and record them.",
        discussion: """
        Frames come from the mirror's NERSC layout (<Folder>/<File name>, labels at
        <Folder>/Labels/<stem>_label.png). Each file streams to a partial file under <data>/tmp
        (kept when interrupted: the next run resumes it with a Range request), is verified (the
        SHA-256 recorded at its first download, else its recorded size), and is renamed into
        <data>/store/<aa>/<sha256>. Files already stored are skipped. A file that does not match is
        moved to <data>/quarantine and reported. The catalog records path, size, SHA-256 and the
        header (format, width, height, pixel type) of every stored frame.
        Exits non-zero when any file failed.

        Examples:
          hrtem import-metadata --from study
          hrtem fetch --where 'material = "Ag" and size = 5 and dose ~ 423 +- 20 and pixel_scale = 0.02' --labels
          hrtem fetch --where 'session = "2022_02_02 Ag"' --mirror lab --jobs 8 --dry-run
        """)

    @OptionGroup var data: DataOptions
    @Option(name: .customLong("where"), help: "The query that selects frames (see `hrtem query --help`).")
    var query: String
    @Flag(help: "Fetch each frame's label too.") var labels = false
    @Option(help: "Mirror to fetch from (see `hrtem mirror list`).") var mirror: String = "nersc"
    @Flag(help: "Print what would be fetched, and fetch nothing.") var dryRun = false
    @OptionGroup var transfer: TransferOptions

    func run() throws {
        let folder = data.folder
        let catalog = try CatalogStore(folder: folder)
        let client = MirrorClient(definition: try folder.mirrorRegistry.mirror(named: mirror),
                                  downloader: transfer.downloader(for: folder))
        let items = try FrameFetcher.plan(query: query, labels: labels, catalog: catalog, client: client)
        if items.isEmpty {
            FileHandle.standardError.write(Data("the query selects no frames\n".utf8))
            return
        }
        if dryRun {
            for item in items {
                let state = item.alreadyStored ? "stored" : item.localCopy != nil ? "local " : "fetch "
                print("\(state)\t\(item.kind.rawValue)\t\(item.request.url)")
            }
            let pending = items.filter { !$0.isPresent }
            let sizes = pending.compactMap(\.request.expected.size)
            var line = "\(items.count) files selected, \(pending.count) to fetch"
            if sizes.count == pending.count && !pending.isEmpty { line += " (\(formatBytes(sizes.reduce(0, +))))" }
            print(line)
            return
        }
        // Downloads finish on worker threads; the catalog records are written one at a time.
        let recorded = Locked((report: FetchRecordReport(), errors: [String]()))
        let byKey = Dictionary(items.map { ($0.request.key, $0) }, uniquingKeysWith: { first, _ in first })
        let downloader = client.downloader
        // Frames the catalog already has on local disk (ingested) are not downloaded again.
        let local = items.filter { $0.localCopy != nil && !$0.alreadyStored }
        let transfers = items.filter { $0.localCopy == nil || $0.alreadyStored }
        for item in local {
            FileHandle.standardError.write(Data("skipped \(item.remotePath) (present at \(item.localCopy!.path))\n".utf8))
        }
        let display = ProgressDisplay(downloader: downloader, totalFiles: transfers.count,
                                      expectedBytes: nil, interactive: ProgressDisplay.standardErrorIsTerminal)
        let started = monotonicSeconds()
        display.start()
        let results = downloader.download(transfers.map(\.request)) { result in
            display.finished(result)
            guard let file = result.file, let item = byKey[result.request.key] else { return }
            recorded.withLock { recorded in
                do { try FrameFetcher.record(item, file: file, in: catalog, report: &recorded.report) } catch {
                    recorded.errors.append("\(item.remotePath): not recorded in the catalog: \(error)")
                }
            }
        }
        let (report, recordErrors) = recorded.value
        display.stop()
        var summary = FetchSummary(results, seconds: monotonicSeconds() - started)
        summary.skipped += local.count
        var text = summary.text
        text += "\nrecorded \(report.framesRecorded) frame\(report.framesRecorded == 1 ? "" : "s") and \(report.labelsRecorded) label\(report.labelsRecorded == 1 ? "" : "s") in the catalog"
        for line in report.unreadable { text += "\nwarning: stored but unreadable: \(line)" }
        for line in recordErrors { text += "\nfailed: \(line)" }
        FileHandle.standardError.write(Data((text + "\n").utf8))
        if !summary.succeeded || !recordErrors.isEmpty { throw ExitCode.failure }
    }
}

/// `hrtem import-metadata --from study`: the published table, fetched into the store.
/// Returns the stored file and the table's own file name (the catalog's metadata source).
func fetchMetadataTable(from source: String, folder: DataFolder) throws -> (URL, String) {
    let mirrorName = source == "study" ? MirrorDefinition.studyMetadata.name : source
    let (stored, name) = try StudyMetadataFetcher.fetch(folder: folder, mirrorName: mirrorName)
    FileHandle.standardError.write(Data("fetched \(name) from \(mirrorName): \(stored.size) bytes, sha256 \(stored.sha256)\n".utf8))
    return (stored.url, name)
}
