import Foundation
import Micrograph
import Preprocessing

/// One fold of a dataset version: row indices into `images.npy` / `labels.npy`.
public struct DatasetFold: Codable, Equatable, Sendable {
    public var fold: Int
    public var seed: Int
    public var train: [Int]
    public var validation: [Int]
    public var test: [Int]
}

/// A dataset version folder as the preprocessing step writes it: `images.npy` (N, P, P) float32,
/// `labels.npy` (N, P, P) uint8 (non-zero = particle), `folds.json` (format 1) and, optionally,
/// `recipe.json` and `MANIFEST`. Patches are held in memory (the study's largest set, 430
/// patches of 512 x 512, is 540 MB).
public struct PatchDataset: Sendable {
    public let folder: URL
    public let count: Int
    public let height: Int
    public let width: Int
    /// Row-major `[count * height * width]`.
    public let images: [Float]
    /// 0/1 per pixel, `[count * height * width]`.
    public let labels: [UInt8]
    public let folds: [DatasetFold]

    /// The version id: `id` from `recipe.json` when present, else the folder's name.
    public let versionID: String

    public var patchPixels: Int { height * width }

    /// - Throws: `FormatError` naming the file and what is wrong (missing file, shapes that
    ///   disagree, a fold index outside the patches).
    public static func load(from folder: URL) throws -> PatchDataset {
        let imagesURL = folder.appendingPathComponent("images.npy")
        let labelsURL = folder.appendingPathComponent("labels.npy")
        let foldsURL = folder.appendingPathComponent("folds.json")
        for url in [imagesURL, labelsURL, foldsURL] where !FileManager.default.fileExists(atPath: url.path) {
            throw FormatError(file: url.path, "missing: a dataset version folder holds images.npy, labels.npy and folds.json")
        }
        let imageArray = try readNPY(from: imagesURL)
        guard imageArray.shape.count == 3, let images = imageArray.float32Values else {
            throw FormatError(file: imagesURL.path, "expected a float32 array of shape (N, P, P), found \(imageArray.pixelType) \(imageArray.shape)")
        }
        let labelArray = try readNPY(from: labelsURL)
        guard labelArray.shape == imageArray.shape else {
            throw FormatError(file: labelsURL.path, "shape \(labelArray.shape) differs from images.npy \(imageArray.shape)")
        }
        let labels: [UInt8]
        if labelArray.bytes.count == labelArray.elementCount {
            labels = labelArray.bytes.map { $0 != 0 ? 1 : 0 }
        } else if let values = labelArray.float32Values {
            labels = values.map { $0 != 0 ? 1 : 0 }
        } else {
            throw FormatError(file: labelsURL.path, "expected uint8 labels, found \(labelArray.pixelType)")
        }
        struct FoldsFile: Decodable { var format: Int; var k: Int?; var folds: [DatasetFold] }
        let foldsFile: FoldsFile
        do {
            foldsFile = try JSONDecoder().decode(FoldsFile.self, from: Data(contentsOf: foldsURL))
        } catch {
            throw FormatError(file: foldsURL.path, "not a folds.json (format 1): \(error)")
        }
        guard foldsFile.format == 1 else {
            throw FormatError(file: foldsURL.path, "folds format \(foldsFile.format); this hrtem reads format 1")
        }
        let count = imageArray.shape[0]
        for fold in foldsFile.folds {
            if let bad = (fold.train + fold.validation + fold.test).first(where: { $0 < 0 || $0 >= count }) {
                throw FormatError(file: foldsURL.path, "fold \(fold.fold) names patch \(bad); the version has \(count)")
            }
        }
        var versionID = folder.lastPathComponent
        let recipeURL = folder.appendingPathComponent("recipe.json")
        if let data = try? Data(contentsOf: recipeURL),
           let recipe = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            if let id = (recipe["versionId"] ?? recipe["id"] ?? recipe["version_id"]) as? String { versionID = id }
        }
        return PatchDataset(folder: folder, count: count, height: imageArray.shape[1], width: imageArray.shape[2],
                            images: images, labels: labels, folds: foldsFile.folds, versionID: versionID)
    }

    public init(folder: URL, count: Int, height: Int, width: Int, images: [Float], labels: [UInt8],
                folds: [DatasetFold], versionID: String) {
        self.folder = folder
        self.count = count
        self.height = height
        self.width = width
        self.images = images
        self.labels = labels
        self.folds = folds
        self.versionID = versionID
    }

    public func fold(_ index: Int) throws -> DatasetFold {
        guard let fold = folds.first(where: { $0.fold == index }) else {
            throw FormatError(file: folder.appendingPathComponent("folds.json").path,
                              "no fold \(index); the version has folds \(folds.map(\.fold))")
        }
        return fold
    }
}

/// Copies patch `source` (side x side, row-major) into `target` under dihedral transform number
/// `transform` (Preprocessing's `DihedralTransform`, the study's order).
func dihedralCopy<T>(_ source: UnsafePointer<T>, into target: UnsafeMutablePointer<T>, side n: Int, transform: Int) {
    guard let symmetry = DihedralTransform(rawValue: transform) else { preconditionFailure("dihedral transform \(transform)") }
    for i in 0..<n {
        for j in 0..<n {
            let (r, c) = symmetry.source(i, j, n)
            target[i * n + j] = source[r * n + c]
        }
    }
}
