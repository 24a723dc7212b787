import Foundation
import Micrograph

/// How a mirror lays out its files.
public enum MirrorLayout: String, Codable, Sendable, CaseIterable {
    /// The NERSC portal: frames at `<base>/<Folder>/<File name>`, labels at
    /// `<base>/<Folder>/Labels/<stem>_label.png`.
    case nersc
    /// Any HTTP base: a relative path is appended to the base, segment by segment encoded.
    case http
    /// The Dryad data repository: files are listed through its JSON API (size + digest).
    case dryad
}

/// One mirror: where it is, how its files are laid out, and how to talk to it politely.
///
/// The built-in definitions are the files `catalog/mirrors/*.json` (compiled in as
/// `MirrorDefinition.builtIn`; a test keeps the two identical). Users add plain HTTP mirrors with
/// `hrtem mirror add`, stored as `<data folder>/mirrors/<name>.json`.
public struct MirrorDefinition: Codable, Equatable, Sendable {
    public var name: String
    public var layout: MirrorLayout
    /// For `nersc`/`http`: the folder URL files hang off. For `dryad`: the API root (`.../api/v2/`).
    public var baseURL: String
    public var description: String?
    /// Dryad only: the dataset's DOI (`doi:10.7941/D1SP93`).
    public var doi: String?
    /// The environment variable holding a bearer token, when the mirror accepts one.
    public var tokenEnvironment: String?
    /// Requests per minute allowed to anonymous clients (a token bucket enforces it).
    public var requestsPerMinute: Double?
    /// For a mirror that publishes the study's metadata table: its path under `baseURL`.
    public var metadataPath: String?
    /// Files the mirror is known to publish, each with its digest (downloads are verified
    /// against it); nil for mirrors whose contents are found by query or listing.
    public var files: [PinnedFile]?

    public init(name: String, layout: MirrorLayout, baseURL: String, description: String? = nil,
                doi: String? = nil, tokenEnvironment: String? = nil, requestsPerMinute: Double? = nil,
                metadataPath: String? = nil, files: [PinnedFile]? = nil) {
        self.name = name
        self.layout = layout
        self.baseURL = baseURL
        self.description = description
        self.doi = doi
        self.tokenEnvironment = tokenEnvironment
        self.requestsPerMinute = requestsPerMinute
        self.metadataPath = metadataPath
        self.files = files
    }

    /// The environment variable that overrides this mirror's base URL (tests point mirrors at a
    /// local server with it): `HRTEM_MIRROR_<NAME>_URL`, name upper-cased, `-` as `_`.
    public var overrideVariable: String {
        "HRTEM_MIRROR_" + name.uppercased().replacingOccurrences(of: "-", with: "_") + "_URL"
    }

    /// This definition with `baseURL` replaced from the environment when the override is set.
    public func applyingOverrides(_ environment: [String: String]) -> MirrorDefinition {
        var copy = self
        if let url = environment[overrideVariable], !url.isEmpty { copy.baseURL = url }
        return copy
    }

    /// The bearer token from the environment, if this mirror takes one and it is set.
    public func token(_ environment: [String: String]) -> String? {
        guard let variable = tokenEnvironment, let value = environment[variable], !value.isEmpty else { return nil }
        return value
    }

    /// - Throws: `MirrorError.badDefinition` for a bad name, URL or missing field.
    public func validate() throws {
        guard name.range(of: #"^[a-z0-9][a-z0-9_-]{0,62}$"#, options: .regularExpression) != nil else {
            throw MirrorError.badDefinition(name, "a name is 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit")
        }
        guard let url = URL(string: baseURL), let scheme = url.scheme?.lowercased(),
              ["http", "https", "file"].contains(scheme), url.host != nil || scheme == "file" else {
            throw MirrorError.badDefinition(name, "base URL '\(baseURL)' is not an http(s) URL")
        }
        if layout == .dryad && (doi ?? "").isEmpty {
            throw MirrorError.badDefinition(name, "a dryad mirror needs a \"doi\"")
        }
    }

    // MARK: Layout -> URL

    /// The URL of a file given by its relative path on the mirror.
    public func url(for path: RemotePath) -> String {
        joinURL(baseURL, path.percentEncoded)
    }

    /// The relative path of a raw frame (NERSC layout): `<Folder>/<File name>`. The folder may
    /// hold `/`, which separates segments like any other.
    public static func framePath(folder: String, file: String) throws -> RemotePath {
        try RemotePath(folder + "/" + file)
    }

    /// The relative path of a frame's label (NERSC layout): `<Folder>/Labels/<stem>_label.png`.
    public static func labelPath(folder: String, file: String) throws -> RemotePath {
        let stem = (file as NSString).deletingPathExtension
        return try RemotePath(folder + "/Labels/" + stem + "_label.png")
    }

    // MARK: Built-ins

    public static let nersc = MirrorDefinition(
        name: "nersc", layout: .nersc,
        baseURL: "https://portal.nersc.gov/project/m3795/hrtem-generalization/",
        description: "Raw DM3 frames and PNG labels of the study: <Folder>/<File name>, <Folder>/Labels/<stem>_label.png (no checksums published)")
    public static let dryad = MirrorDefinition(
        name: "dryad", layout: .dryad, baseURL: "https://datadryad.org/api/v2/",
        description: "Processed image/label HDF5 pairs of the study on Dryad (file API publishes size and digest; anonymous clients ~30 requests/min)",
        doi: "doi:10.7941/D1SP93", tokenEnvironment: "DRYAD_TOKEN", requestsPerMinute: 30)
    public static let studyMetadata = MirrorDefinition(
        name: "study-metadata", layout: .http,
        baseURL: "https://raw.githubusercontent.com/ScottLabUCB/HRTEM-Generalization/HEAD/",
        description: "The study's published metadata table in its public GitHub repository",
        metadataPath: "dataset_creation/Dataset_metadata.csv")

    /// The project's mirrors, identical to `catalog/mirrors/*.json`.
    public static let builtIn: [MirrorDefinition] = [nersc, dryad, studyMetadata, studyModels]
}

/// The built-in mirrors plus those a user added to a data folder, with environment overrides.
public struct MirrorRegistry: Sendable {
    /// `<data folder>/mirrors`: one JSON file per user-added mirror.
    public let userFolder: URL?
    public let environment: [String: String]

    public init(userFolder: URL?, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.userFolder = userFolder
        self.environment = environment
    }

    /// Built-ins first, then user mirrors sorted by name; base URLs after environment overrides.
    /// - Throws: `MirrorError.badDefinition` naming the file when a user definition is unreadable.
    public func all() throws -> [MirrorDefinition] {
        var result = MirrorDefinition.builtIn
        if let userFolder, let names = try? FileManager.default.contentsOfDirectory(atPath: userFolder.path) {
            for file in names.sorted() where file.hasSuffix(".json") && !file.hasPrefix(".") {
                let url = userFolder.appendingPathComponent(file)
                result.append(try Self.load(url))
            }
        }
        return result.map { $0.applyingOverrides(environment) }
    }

    /// - Throws: `MirrorError.unknownMirror` listing the known names.
    public func mirror(named name: String) throws -> MirrorDefinition {
        let mirrors = try all()
        guard let found = mirrors.first(where: { $0.name == name }) else {
            throw MirrorError.unknownMirror(name, known: mirrors.map(\.name))
        }
        return found
    }

    /// Saves a user mirror (atomically). Built-in names cannot be replaced: their URL is
    /// overridden with `HRTEM_MIRROR_<NAME>_URL` instead.
    /// - Throws: `MirrorError.badDefinition` for an invalid or clashing definition.
    public func add(_ definition: MirrorDefinition) throws {
        try definition.validate()
        guard let userFolder else { throw MirrorError.badDefinition(definition.name, "no data folder to store it in") }
        if MirrorDefinition.builtIn.contains(where: { $0.name == definition.name }) {
            throw MirrorError.badDefinition(definition.name, "is built in; choose another name or set \(definition.overrideVariable)")
        }
        if definition.layout == .dryad {
            throw MirrorError.badDefinition(definition.name, "user mirrors use the nersc or http layout")
        }
        let data = try CanonicalJSON.pretty(definition)
        try FileManager.default.createDirectory(at: userFolder, withIntermediateDirectories: true)
        try writeFileAtomically(data, to: userFolder.appendingPathComponent(definition.name + ".json"))
    }

    /// Removes a user mirror; returns whether it existed.
    @discardableResult
    public func remove(named name: String) throws -> Bool {
        guard let userFolder else { return false }
        let url = userFolder.appendingPathComponent(name + ".json")
        guard FileManager.default.fileExists(atPath: url.path) else { return false }
        try FileManager.default.removeItem(at: url)
        return true
    }

    static func load(_ url: URL) throws -> MirrorDefinition {
        do {
            let definition = try JSONDecoder().decode(MirrorDefinition.self, from: Data(contentsOf: url))
            try definition.validate()
            return definition
        } catch let error as MirrorError {
            throw MirrorError.badDefinition(url.path, error.description)
        } catch {
            throw MirrorError.badDefinition(url.path, "not a mirror definition: \(error)")
        }
    }
}
