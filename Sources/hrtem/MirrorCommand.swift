import ArgumentParser
import Catalog
import Foundation
import Micrograph
import Mirrors

/// Transfer settings shared by the commands that download.
struct TransferOptions: ParsableArguments {
    @Option(help: "Transfers in flight at once.")
    var jobs: Int = 4
    @Option(help: "Seconds allowed to connect.")
    var connectTimeout: Double = 30
    @Option(help: "Abandon (then retry and resume) a transfer slower than --low-speed-limit bytes/s for this many seconds.")
    var lowSpeedTime: Int = 60
    @Option(help: "Bytes per second below which a transfer counts as stalled.")
    var lowSpeedLimit: Int = 1024
    @Option(help: "Attempts per file (timeouts, resets, 5xx and 429 are retried with back-off).")
    var attempts: Int = 6

    func validate() throws {
        guard jobs >= 1 && jobs <= 64 else { throw ValidationError("--jobs must be between 1 and 64") }
        guard attempts >= 1 else { throw ValidationError("--attempts must be at least 1") }
        guard lowSpeedTime >= 1, connectTimeout > 0 else { throw ValidationError("timeouts must be positive") }
    }

    func downloader(for folder: DataFolder) -> Downloader {
        var configuration = DownloaderConfiguration()
        configuration.jobs = jobs
        configuration.connectTimeout = connectTimeout
        configuration.lowSpeedTime = lowSpeedTime
        configuration.lowSpeedLimit = lowSpeedLimit
        configuration.retry.maxAttempts = attempts
        return Downloader(store: ContentStore(root: folder.url), configuration: configuration)
    }
}

extension DataFolder {
    /// User-added mirror definitions: `<data>/mirrors/<name>.json`.
    var mirrorRegistry: MirrorRegistry { MirrorRegistry(userFolder: url.appendingPathComponent("mirrors")) }
}

struct MirrorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirror",
        abstract: "List, add and use the mirrors hrtem fetches from (NERSC portal, Dryad, any HTTP base).",
        discussion: """
        Built-in mirrors are defined in catalog/mirrors/*.json. A mirror's base URL can be replaced
        with HRTEM_MIRROR_<NAME>_URL (e.g. HRTEM_MIRROR_NERSC_URL=http://localhost:8000/).
        Dryad downloads use DRYAD_TOKEN when set (anonymous clients are limited to ~30 requests/min).

        Examples:
          hrtem mirror list
          hrtem mirror add lab https://data.example.org/hrtem/ --layout nersc
          hrtem mirror files dryad
          hrtem mirror get nersc "2021_08_26 5nm Au nanoparticles on C/Ultrathin Carbon/Au_UTC_205kX_2630e_0p1596s_01.dm3"
          hrtem mirror get dryad Au_2p2nm_Images.h5 --jobs 2
        """,
        subcommands: [MirrorList.self, MirrorAdd.self, MirrorRemove.self, MirrorFiles.self, MirrorGet.self])
}

struct MirrorList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the mirrors, built-in and added.")
    @OptionGroup var data: DataOptions

    func run() throws {
        for mirror in try data.folder.mirrorRegistry.all() {
            var line = "\(mirror.name)\t\(mirror.layout.rawValue)\t\(mirror.baseURL)"
            if let doi = mirror.doi { line += "\t\(doi)" }
            if let description = mirror.description { line += "\t\(description)" }
            print(line)
        }
    }
}

struct MirrorAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Add a plain HTTP mirror.",
        discussion: "With --layout nersc, frames are at <URL>/<Folder>/<File name> and labels at <URL>/<Folder>/Labels/<stem>_label.png.")
    @OptionGroup var data: DataOptions
    @Argument(help: "Name (a-z, 0-9, '-', '_').") var name: String
    @Argument(help: "Base URL (http or https).") var url: String
    @Option(help: "nersc or http.") var layout: MirrorLayout = .nersc
    @Option(help: "A line describing the mirror.") var describe: String?

    func validate() throws {
        if layout == .dryad { throw ValidationError("--layout must be nersc or http: only the built-in mirror uses dryad") }
    }

    func run() throws {
        try data.folder.mirrorRegistry.add(MirrorDefinition(name: name, layout: layout, baseURL: url, description: describe))
        print("added mirror \(name) (\(layout.rawValue)) at \(url)")
    }
}

struct MirrorRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a mirror added with `mirror add`.")
    @OptionGroup var data: DataOptions
    @Argument var name: String

    func run() throws {
        guard try data.folder.mirrorRegistry.remove(named: name) else {
            throw ValidationError("no added mirror named \(name)")
        }
        print("removed mirror \(name)")
    }
}

struct MirrorFiles: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files", abstract: "List a Dryad mirror's files with size and digest.")
    @OptionGroup var data: DataOptions
    @Argument var name: String = "dryad"
    @OptionGroup var transfer: TransferOptions

    func run() throws {
        let client = MirrorClient(definition: try data.folder.mirrorRegistry.mirror(named: name),
                                  downloader: transfer.downloader(for: data.folder))
        for file in try client.listFiles() {
            print("\(file.path)\t\(file.size.map(String.init) ?? "?")\t\(file.digest?.description ?? "-")")
        }
    }
}

struct MirrorGet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Download files by their path on a mirror into the store, verified and resumable.",
        discussion: """
        Prints one line per stored file: SHA-256, size, store path, mirror path. Exits non-zero when
        any file failed. For a Dryad mirror, paths are those of `hrtem mirror files` (size and
        digest verified); --all fetches every listed file.
        """)
    @OptionGroup var data: DataOptions
    @Argument(help: "Mirror name.") var name: String
    @Argument(help: "Paths on the mirror ('/' separates folders; spaces allowed).") var paths: [String] = []
    @Flag(help: "Dryad: every file of the dataset.") var all = false
    @Option(help: "Expected SHA-256 (one path only).") var sha256: String?
    @OptionGroup var transfer: TransferOptions

    func validate() throws {
        if paths.isEmpty && !all { throw ValidationError("name at least one path (or --all for a Dryad mirror)") }
        if sha256 != nil && paths.count != 1 { throw ValidationError("--sha256 goes with exactly one path") }
    }

    func run() throws {
        let folder = data.folder
        let client = MirrorClient(definition: try folder.mirrorRegistry.mirror(named: name),
                                  downloader: transfer.downloader(for: folder))
        var requests: [DownloadRequest] = []
        if client.definition.layout == .dryad {
            let listing = try client.listFiles()
            let wanted = all ? listing : try paths.map { path in
                guard let file = listing.first(where: { $0.path.description == path }) else {
                    throw ValidationError("\(path) is not in the \(name) listing (see `hrtem mirror files \(name)`)")
                }
                return file
            }
            requests = wanted.map { client.request(for: $0) }
        } else {
            requests = try paths.map { client.request(for: try RemotePath($0), expected: ExpectedContent(sha256: sha256)) }
        }
        let (results, summary) = client.downloader.fetchShowingProgress(requests)
        for result in results {
            guard let file = result.file else { continue }
            print("\(file.sha256)\t\(file.size)\t\(file.url.path)\t\(result.request.key)")
        }
        FileHandle.standardError.write(Data((summary.text + "\n").utf8))
        if !summary.succeeded { throw ExitCode.failure }
    }
}

extension MirrorLayout: ExpressibleByArgument {}
