import Foundation
import Micrograph

/// The layout of a dataset version folder, the one definition its writer (Catalog's
/// materializer) and every reader (the trainer, the evaluator, the matrix, export) share:
///
/// - `images.npy`: (N, P, P) float32, preprocessed and rescaled patches;
/// - `labels.npy`: (N, P, P) uint8, 0 substrate, 1 particle;
/// - `patches.csv`: where each patch came from (patch, session, file, row, column, particle_pixels);
/// - `folds.json`: the folds (`FoldPlan`, format 1), row indices into the arrays;
/// - `recipe.json`: the resolved recipe and what the build found; its `versionId` and `name`
///   identify the version;
/// - `MANIFEST`: `<sha256>  <file>` per file above (`sha256sum -c` compatible).
///
/// Row i of the arrays is patch i of the stored (shuffled) order, which fold indices refer to.
public struct VersionFolder: Hashable, Sendable {
    public static let imagesName = "images.npy"
    public static let labelsName = "labels.npy"
    public static let patchesName = "patches.csv"
    public static let foldsName = "folds.json"
    public static let recipeName = "recipe.json"
    public static let manifestName = "MANIFEST"
    /// The files MANIFEST lists, in its (sorted) order.
    public static let dataFiles = [foldsName, imagesName, labelsName, patchesName, recipeName]

    public let url: URL

    public init(_ url: URL) { self.url = url.standardizedFileURL }

    public var imagesFile: URL { url.appendingPathComponent(Self.imagesName) }
    public var labelsFile: URL { url.appendingPathComponent(Self.labelsName) }
    public var patchesFile: URL { url.appendingPathComponent(Self.patchesName) }
    public var foldsFile: URL { url.appendingPathComponent(Self.foldsName) }
    public var recipeFile: URL { url.appendingPathComponent(Self.recipeName) }
    public var manifestFile: URL { url.appendingPathComponent(Self.manifestName) }

    /// Whether `url` is a version folder: it has `recipe.json` and `folds.json`.
    public static func exists(at url: URL) -> Bool {
        let folder = VersionFolder(url)
        return [folder.recipeFile, folder.foldsFile].allSatisfy { FileManager.default.fileExists(atPath: $0.path) }
    }

    /// The folds.
    /// - Throws: `FormatError` naming `folds.json` when it is missing, not format 1, or malformed.
    public func folds() throws -> FoldPlan {
        let plan = try readJSONFile(FoldPlan.self, from: foldsFile, what: "a folds.json (format 1)")
        guard plan.format == 1 else {
            throw FormatError(file: foldsFile.path, "folds format \(plan.format); this hrtem reads format 1")
        }
        return plan
    }

    /// What identifies the version: `versionId` and `name` of `recipe.json`.
    public struct Identity: Codable, Hashable, Sendable {
        public var versionId: String
        public var name: String
    }

    /// - Throws: `FormatError` naming `recipe.json` when it is missing or lacks the keys.
    public func identity() throws -> Identity {
        try readJSONFile(Identity.self, from: recipeFile, what: "a dataset version's recipe.json")
    }
}
