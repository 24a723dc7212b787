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
    public var versionId: String { sha256Hex(canonicalEncoder().encodeOrDie(self)) }
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

/// A materialized, immutable dataset version folder:
/// `images.npy` (N, P, P) float32 (preprocessed, rescaled), `labels.npy` (N, P, P) uint8 (0
/// substrate, 1 particle), `patches.csv` (patch, session, file, row, column, particle_pixels),
/// `folds.json` (see `FoldPlan`), `recipe.json` (`DatasetVersionInfo`), and `MANIFEST`
/// (`<sha256>  <file>` per file, `sha256sum -c` compatible). Row i of the arrays is patch i of
/// the stored (shuffled) order, which is what fold indices refer to.
public struct DatasetVersion: Sendable {
    public static let dataFiles = ["folds.json", "images.npy", "labels.npy", "patches.csv", "recipe.json"]

    public let folder: URL
    public let info: DatasetVersionInfo

    public var versionId: String { info.versionId }
    public var name: String { info.name }
    public var patchCount: Int { info.patchCount }
    public var patchSize: Int { info.patchSize }

    /// Opens a version folder (reads `recipe.json` only).
    /// - Throws: `DatasetError` naming the file when it is missing or unreadable.
    public static func open(at folder: URL) throws -> DatasetVersion {
        let file = folder.appendingPathComponent("recipe.json")
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw DatasetError("\(file.path): missing (not a dataset version folder)")
        }
        do {
            return DatasetVersion(folder: folder, info: try JSONDecoder().decode(DatasetVersionInfo.self, from: data))
        } catch {
            throw DatasetError("\(file.path): unreadable (\(error))")
        }
    }

    public var imagesFile: URL { folder.appendingPathComponent("images.npy") }
    public var labelsFile: URL { folder.appendingPathComponent("labels.npy") }

    public func folds() throws -> FoldPlan {
        do { return try FoldPlan.read(from: folder.appendingPathComponent("folds.json")) } catch {
            throw DatasetError("\(folder.appendingPathComponent("folds.json").path): unreadable (\(error))")
        }
    }

    /// All images, (N, P, P) float32.
    public func images() throws -> NPYArray { try readNPY(from: imagesFile) }
    /// All labels, (N, P, P) uint8 0/1.
    public func labels() throws -> NPYArray { try readNPY(from: labelsFile) }

    /// The rows of `patches.csv` (patch index, session, file, row, column, particle pixels).
    public func patchRows() throws -> [PatchRow] {
        let url = folder.appendingPathComponent("patches.csv")
        let text = try String(contentsOf: url, encoding: .utf8)
        var rows = [PatchRow]()
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() where n > 0 {
            let fields = parseCSVLine(String(line))
            guard fields.count == 6, let p = Int(fields[0]), let r = Int(fields[3]), let c = Int(fields[4]), let k = Int(fields[5]) else {
                throw DatasetError("\(url.path):\(n + 1): expected 6 fields patch,session,file,row,column,particle_pixels")
            }
            rows.append(PatchRow(patch: p, session: fields[1], file: fields[2], row: r, column: c, particlePixels: k))
        }
        return rows
    }

    /// Re-hashes every file against `MANIFEST`. Returns the problems found (empty: intact).
    public func verify() throws -> [String] {
        let manifestURL = folder.appendingPathComponent("MANIFEST")
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
        for name in Self.dataFiles where !listed.contains(name) { problems.append("\(name): not in MANIFEST") }
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

    /// `NAME` (its latest version) or `NAME@VERSION` (a unique prefix of the version id).
    /// - Throws: `DatasetError` saying what is registered when nothing (or more than one) matches.
    public static func resolve(_ spec: String, in store: CatalogStore, dataFolder: DataFolder) throws -> DatasetVersion {
        let parts = spec.split(separator: "@", maxSplits: 1).map(String.init)
        let versions = try versions(named: parts[0], in: store)
        guard !versions.isEmpty else {
            throw DatasetError("dataset \(parts[0]) has no built version; run `hrtem dataset build \(parts[0])`")
        }
        var chosen = versions.last!
        if parts.count == 2 {
            let matches = versions.filter { $0.versionId.hasPrefix(parts[1]) }
            guard matches.count == 1 else {
                throw DatasetError("dataset \(spec): \(matches.isEmpty ? "no" : "more than one") version starts with \(parts[1]); versions: \(versions.map { String($0.versionId.prefix(12)) }.joined(separator: ", "))")
            }
            chosen = matches[0]
        }
        let folder = chosen.folder.hasPrefix("/") ? URL(fileURLWithPath: chosen.folder)
                                                   : dataFolder.url.appendingPathComponent(chosen.folder)
        return try DatasetVersion.open(at: folder)
    }
}
