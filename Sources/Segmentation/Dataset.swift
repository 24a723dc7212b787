import Foundation
import Micrograph
import Preprocessing

/// A dataset version's patches in memory (see `VersionFolder` for the folder's layout): images
/// (N, P, P) float32, labels (N, P, P) 0/1 and the folds. The study's largest set, 430 patches
/// of 512 x 512, is 540 MB.
public struct PatchDataset: Sendable {
    public let version: VersionFolder
    public let count: Int
    public let height: Int
    public let width: Int
    /// Row-major `[count * height * width]`.
    public let images: [Float]
    /// 0/1 per pixel, `[count * height * width]`.
    public let labels: [UInt8]
    public let folds: [Fold]
    /// The version id (`recipe.json`'s `versionId`).
    public let versionID: String

    public var folder: URL { version.url }
    public var patchPixels: Int { height * width }

    /// - Throws: `FormatError` naming the file and what is wrong (missing file, shapes that
    ///   disagree, a fold index outside the patches).
    public static func load(from folder: URL) throws -> PatchDataset {
        let version = VersionFolder(folder)
        let identity = try version.identity()
        let plan = try version.folds()
        let imageArray = try readNPY(from: version.imagesFile)
        guard imageArray.shape.count == 3, let images = imageArray.float32Values else {
            throw FormatError(file: version.imagesFile.path, "expected a float32 array of shape (N, P, P), found \(imageArray.pixelType) \(imageArray.shape)")
        }
        let labelArray = try readNPY(from: version.labelsFile)
        guard labelArray.shape == imageArray.shape else {
            throw FormatError(file: version.labelsFile.path, "shape \(labelArray.shape) differs from images.npy \(imageArray.shape)")
        }
        let labels: [UInt8]
        if labelArray.bytes.count == labelArray.elementCount {
            labels = labelArray.bytes.map { $0 != 0 ? 1 : 0 }
        } else if let values = labelArray.float32Values {
            labels = values.map { $0 != 0 ? 1 : 0 }
        } else {
            throw FormatError(file: version.labelsFile.path, "expected uint8 labels, found \(labelArray.pixelType)")
        }
        let count = imageArray.shape[0]
        for fold in plan.folds {
            if let bad = (fold.train + fold.validation + fold.test).first(where: { $0 < 0 || $0 >= count }) {
                throw FormatError(file: version.foldsFile.path, "fold \(fold.fold) names patch \(bad); the version has \(count)")
            }
        }
        return PatchDataset(version: version, count: count, height: imageArray.shape[1], width: imageArray.shape[2],
                            images: images, labels: labels, folds: plan.folds, versionID: identity.versionId)
    }

    public init(version: VersionFolder, count: Int, height: Int, width: Int, images: [Float], labels: [UInt8],
                folds: [Fold], versionID: String) {
        self.version = version
        self.count = count
        self.height = height
        self.width = width
        self.images = images
        self.labels = labels
        self.folds = folds
        self.versionID = versionID
    }

    public func fold(_ index: Int) throws -> Fold {
        guard let fold = folds.first(where: { $0.fold == index }) else {
            throw FormatError(file: version.foldsFile.path, "no fold \(index); the version has folds \(folds.map(\.fold))")
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
