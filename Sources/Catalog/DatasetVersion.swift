import Foundation
import GRDB
import Micrograph
import Preprocessing

/// Bumped whenever the bytes a build writes for the same inputs would change; part of every
/// version id.
public let datasetFormatVersion = 1

/// One input frame of a resolved recipe: identity and content hashes (never local paths).
public struct ResolvedFrame: Codable, Equatable, Sendable {
    public var session: String
    public var file: String
    public var sha256: String
    public var labelSha256: String
}

/// A recipe bound to the exact inputs a query selected, in selection (metadata-table) order.
/// Its canonical JSON hash is the version id.
public struct ResolvedRecipe: Codable, Equatable, Sendable {
    public var formatVersion: Int
    public var recipe: DatasetRecipe
    public var frames: [ResolvedFrame]

    /// SHA-256 (hex) of the canonical JSON: the resolved recipe, its input hashes, the format version.
    public func versionId() throws -> String { sha256Hex(try CanonicalJSON.pretty(self)) }
}

/// `recipe.json` of a version folder: the resolved recipe plus what the build found.
/// Top-level `versionId`, `name`, `query`, `patchCount` are what other tools read.
public struct DatasetVersionInfo: Codable, Equatable, Sendable {
    public var versionId: String
    public var name: String
    public var query: String
    public var formatVersion: Int
    public var recipe: DatasetRecipe
    /// Input frames in selection order.
    public var frames: [ResolvedFrame]
    /// The image-level shuffle: position p of the stored order holds `frames[frameOrder[p]]`.
    public var frameOrder: [Int]
    public var frameCount: Int
    public var patchCount: Int
    public var patchSize: Int
    public var foldRule: FoldRule
}

/// One row of `patches.csv`.
public struct PatchRow: Equatable, Sendable {
    public var patch: Int
    public var session: String
    public var file: String
    public var row: Int
    public var column: Int
    public var particlePixels: Int
}

/// A materialized, immutable dataset version: its folder (see `VersionFolder` for the layout)
/// and what `recipe.json` says of it.
public struct DatasetVersion: Sendable {
    public let files: VersionFolder
    public let info: DatasetVersionInfo

    public var folder: URL { files.url }
    public var versionId: String { info.versionId }
    public var name: String { info.name }
    public var patchCount: Int { info.patchCount }
    public var patchSize: Int { info.patchSize }
    /// `name@<first 12 digits of the version id>`: what listings and logs print.
    public var label: String { "\(name)@\(versionId.prefix(12))" }

    /// Opens a version folder (reads `recipe.json` only).
    /// - Throws: `FormatError` naming `recipe.json` when it is missing or unreadable.
    public static func open(at folder: URL) throws -> DatasetVersion {
        let files = VersionFolder(folder)
        return DatasetVersion(files: files, info: try readJSONFile(DatasetVersionInfo.self, from: files.recipeFile,
                                                                   what: "a dataset version's recipe.json"))
    }

    public var imagesFile: URL { files.imagesFile }
    public var labelsFile: URL { files.labelsFile }

    public func folds() throws -> FoldPlan { try files.folds() }

    /// All images, (N, P, P) float32.
    public func images() throws -> NPYArray { try readNPY(from: imagesFile) }
    /// All labels, (N, P, P) uint8 0/1.
    public func labels() throws -> NPYArray { try readNPY(from: labelsFile) }

    /// The rows of `patches.csv` (patch index, session, file, row, column, particle pixels).
    /// - Throws: `FormatError` naming the file and line of a malformed row.
    public func patchRows() throws -> [PatchRow] {
        let url = files.patchesFile
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw FormatError(file: url.path, "cannot read: \(error.localizedDescription)")
        }
        var rows = [PatchRow]()
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() where n > 0 {
            let fields = parseCSVLine(String(line))
            guard fields.count == 6, let p = Int(fields[0]), let r = Int(fields[3]), let c = Int(fields[4]), let k = Int(fields[5]) else {
                throw FormatError(file: url.path, line: n + 1, "expected 6 fields patch,session,file,row,column,particle_pixels")
            }
            rows.append(PatchRow(patch: p, session: fields[1], file: fields[2], row: r, column: c, particlePixels: k))
        }
        return rows
    }

    /// Re-hashes every file against `MANIFEST`. Returns the problems found (empty: intact).
    public func verify() throws -> [String] {
        let manifestURL = files.manifestFile
        guard let text = try? String(contentsOf: manifestURL, encoding: .utf8) else {
            return ["\(manifestURL.path): missing"]
        }
        var problems = [String]()
        var listed = Set<String>()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { problems.append("MANIFEST: unreadable line '\(line)'"); continue }
            let name = parts[1].trimmingCharacters(in: .whitespaces)
            listed.insert(name)
            let url = folder.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else { problems.append("\(name): missing"); continue }
            let actual = try sha256Hex(fileAt: url)
            if actual != parts[0] { problems.append("\(name): SHA-256 \(actual) does not match the MANIFEST's \(parts[0])") }
        }
        for name in VersionFolder.dataFiles where !listed.contains(name) { problems.append("\(name): not in MANIFEST") }
        return problems
    }
}

func csvField(_ text: String) -> String {
    text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
        ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
}

func parseCSVLine(_ line: String) -> [String] {
    var fields = [String](), field = "", quoted = false
    var iterator = Array(line).makeIterator()
    var pending: Character? = nil
    while let ch = pending ?? iterator.next() {
        pending = nil
        if quoted {
            if ch == "\"" {
                if let next = iterator.next() {
                    if next == "\"" { field.append("\"") } else { quoted = false; pending = next }
                } else { quoted = false }
            } else { field.append(ch) }
        } else if ch == "\"" { quoted = true }
        else if ch == "," { fields.append(field); field = "" }
        else { field.append(ch) }
    }
    fields.append(field)
    return fields
}

/// A registered version as the catalog's `dataset_versions` row describes it.
public struct RegisteredDatasetVersion: Equatable, Sendable {
    public var name: String
    public var versionId: String
    public var folder: String
    public var frameCount: Int
    public var patchCount: Int
    public var manifestSha256: String
    public var createdAt: String
}

/// The dataset versions the catalog knows.
public enum DatasetRegistry {
    public static func versions(named name: String? = nil, in store: CatalogStore) throws -> [RegisteredDatasetVersion] {
        try store.dbQueue.read { db in
            try Row.fetchAll(db, sql: """
                SELECT r.name, v.version_id, v.folder, v.frame_count, v.patch_count, v.manifest_sha256, v.created_at
                FROM dataset_versions v JOIN recipes r ON r.id = v.recipe_id
                WHERE ? IS NULL OR r.name = ? ORDER BY r.name, v.created_at, v.id
                """, arguments: [name, name]).map { row in
                RegisteredDatasetVersion(name: row[0], versionId: row[1], folder: row[2], frameCount: row[3] ?? 0,
                                     patchCount: row[4] ?? 0, manifestSha256: row[5] ?? "", createdAt: row[6])
            }
        }
    }

    /// The version a registered reference names: `NAME` its latest version, `NAME@PREFIX` the
    /// one whose id starts with PREFIX. Nil when the catalog has no version of that name.
    /// - Throws: `DatasetError` when a prefix matches none or several of the registered versions.
    public static func registered(_ reference: DatasetReference, in store: CatalogStore,
                                  dataFolder: DataFolder) throws -> DatasetVersion? {
        let versions = try versions(named: reference.name, in: store)
        guard var chosen = versions.last else { return nil }
        if let prefix = reference.versionPrefix {
            let matches = versions.filter { $0.versionId.hasPrefix(prefix) }
            guard matches.count == 1 else {
                throw DatasetError(dataset: reference.description, matches.isEmpty ? "no version id starts with \(prefix)" : "several version ids start with \(prefix)",
                                   known: versions.map { String($0.versionId.prefix(12)) })
            }
            chosen = matches[0]
        }
        let folder = chosen.folder.hasPrefix("/") ? URL(fileURLWithPath: chosen.folder)
                                                   : dataFolder.url.appendingPathComponent(chosen.folder)
        return try DatasetVersion.open(at: folder)
    }

    /// The dataset version an argument names, the one rule every command follows: a path to a
    /// version folder; else a registered `NAME[@PREFIX]` (`registered`); else a built folder
    /// `<data>/datasets/NAME/<id>/` whose id starts with PREFIX (or the only one there, without
    /// a prefix), for a data folder whose catalog lost track of it.
    /// - Throws: `DatasetError` saying what was looked for and what exists.
    public static func locate(_ argument: String, in dataFolder: DataFolder, store: CatalogStore? = nil) throws -> DatasetVersion {
        let trimmed = argument.trimmingCharacters(in: .whitespaces)
        let direct = URL(fileURLWithPath: trimmed, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        if VersionFolder.exists(at: direct) { return try DatasetVersion.open(at: direct) }
        let reference = try DatasetReference(parsing: trimmed)
        let catalog = try store ?? (FileManager.default.fileExists(atPath: dataFolder.catalogFile.path) ? CatalogStore(folder: dataFolder) : nil)
        if let catalog, let version = try registered(reference, in: catalog, dataFolder: dataFolder) { return version }
        let base = dataFolder.datasetsFolder.appendingPathComponent(reference.name)
        let built = ((try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? [])
            .filter { !$0.hasPrefix(".") && VersionFolder.exists(at: base.appendingPathComponent($0)) }.sorted()
        let matches = built.filter { $0.hasPrefix(reference.versionPrefix ?? "") }
        if matches.count == 1 { return try DatasetVersion.open(at: base.appendingPathComponent(matches[0])) }
        if built.isEmpty {
            throw DatasetError(dataset: reference.description,
                               "no version folder at \(trimmed) nor under \(base.path); build it with `hrtem dataset build \(reference.name)`")
        }
        throw DatasetError(dataset: reference.description,
                           matches.isEmpty ? "no version under \(base.path) starts with \(reference.versionPrefix ?? "")"
                                           : "\(matches.count) versions under \(base.path); name one as \(reference.name)@PREFIX",
                           known: built.map { String($0.prefix(12)) })
    }
}

/// A dataset named by its recipe: `NAME` (the latest version) or `NAME@PREFIX` (the version whose
/// id starts with PREFIX). The one parser of that syntax.
public struct DatasetReference: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var versionPrefix: String?

    /// - Throws: `DatasetError` for an empty name or an empty prefix after `@`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let first = parts.first, !first.isEmpty else { throw DatasetError(dataset: text, "no dataset name before '@'") }
        if parts.count == 2, parts[1].isEmpty { throw DatasetError(dataset: text, "no version after '@'") }
        name = first
        versionPrefix = parts.count == 2 ? parts[1] : nil
    }

    public var description: String { versionPrefix.map { "\(name)@\($0)" } ?? name }
}
