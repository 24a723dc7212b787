import CHDF5
import Foundation
import GRDB
import Micrograph
import Preprocessing

/// Turns a processed dataset in the study's HDF5 layout (`<Name>_Images.h5` holding `images`
/// (N, P, P) float64, `<Name>_Labels.h5` holding `labels` (N, P, P) float32 0/1; what
/// `DatasetExport` writes and the study published) into a registered dataset version.
public enum DatasetH5Import {
    /// Imports the pair as version of dataset `name`: images as float32, labels as uint8 0/1,
    /// the study's folds (contiguous `array_split` blocks, `folds` of them), `patches.csv` from
    /// beside the images file when one with N rows is there (an hrtem export), else one row per
    /// patch naming the file. The version id hashes both files' SHA-256 and the fold count; the
    /// recipe records both digests as its single input (its lineage). Nothing is registered or
    /// published unless the whole import succeeded.
    /// - Throws: `FormatError` naming the file for an unreadable HDF5 file, a missing dataset,
    ///   shapes that disagree or are not (N, P, P) with P a multiple of 16, a label that is not
    ///   0 or 1 (with the patch and pixel); `DatasetError` when `name` belongs to a real recipe.
    public static func importPair(name: String, images: URL, labels: URL, folds: Int = 5,
                                  imagesKey: String = "images", labelsKey: String = "labels",
                                  store: CatalogStore, dataFolder: DataFolder,
                                  log: (String) -> Void = { _ in }) throws -> DatasetBuildResult {
        try HDF5Library.shared.run {
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "_-.".contains($0) }), !name.hasPrefix(".") else {
                throw DatasetError(dataset: name, "a name holds only letters, digits, '_', '-' and '.' (and does not start with '.')")
            }
            guard folds >= 2 else { throw DatasetError(dataset: name, "folds must be at least 2, not \(folds)") }
            if let existing = try RecipeStore.recipe(named: name, in: store), !existing.query.isEmpty {
                throw DatasetError(dataset: name, "is defined by a recipe (query \(existing.query)); import under another name")
            }
            let imagesSHA = try sha256Hex(fileAt: images), labelsSHA = try sha256Hex(fileAt: labels)
            let imageSource = try H5Planes(url: images, key: imagesKey)
            defer { imageSource.close() }
            let labelSource = try H5Planes(url: labels, key: labelsKey)
            defer { labelSource.close() }
            guard imageSource.shape == labelSource.shape else {
                throw FormatError(file: labels.path, "\(labelsKey) is \(labelSource.shape), the images in \(images.lastPathComponent) are \(imageSource.shape)")
            }
            let count = imageSource.shape[0], patch = imageSource.shape[1]
            guard count > 0 else { throw FormatError(file: images.path, "\(imagesKey) holds no patches") }
            guard patch == imageSource.shape[2], patch % 16 == 0 else {
                throw FormatError(file: images.path, "\(imagesKey) is \(imageSource.shape): patches must be square, a multiple of 16 on a side")
            }
            guard count >= folds else { throw DatasetError(dataset: name, "\(count) patches cannot make \(folds) folds") }

            var recipe = DatasetRecipe(name: name, query: "",
                                       description: "imported from \(images.lastPathComponent) and \(labels.lastPathComponent) (study HDF5 layout)")
            recipe.patch = patch
            recipe.stride = patch
            recipe.folds = folds
            recipe.minParticlePixels = 0
            let input = ResolvedFrame(session: "hdf5", file: images.lastPathComponent, sha256: imagesSHA, labelSha256: labelsSHA)
            let resolved = ResolvedRecipe(formatVersion: datasetFormatVersion, recipe: recipe, frames: [input])
            let versionId = try resolved.versionId()
            return try DatasetMaterializer.publish(recipe, versionId: versionId, store: store, dataFolder: dataFolder,
                                                        log: log) { folder in
                let particles = try writeArrays(imageSource, labelSource, count: count, patch: patch, into: folder)
                let rows = try patchRowsBeside(images, count: count)
                var csv = "patch,session,file,row,column,particle_pixels\n"
                for index in 0..<count {
                    if let rows {
                        let row = rows[index]
                        csv += "\(index),\(csvField(row.session)),\(csvField(row.file)),\(row.row),\(row.column),\(particles[index])\n"
                    } else {
                        csv += "\(index),hdf5,\(csvField(images.lastPathComponent)),0,0,\(particles[index])\n"
                    }
                }
                let files = VersionFolder(folder)
                try writeFileAtomically(Data(csv.utf8), to: files.patchesFile)
                try writeFileAtomically(studyFolds(count: count, k: folds).jsonBytes(), to: files.foldsFile)
                let info = DatasetVersionInfo(versionId: versionId, name: name, query: "", formatVersion: datasetFormatVersion,
                                              recipe: recipe, frames: [input], frameOrder: [0], frameCount: 1,
                                              patchCount: count, patchSize: patch, foldRule: .study)
                try writeFileAtomically(try CanonicalJSON.pretty(info), to: files.recipeFile)
                return info
            }
        }
    }

    /// Streams images (-> float32) and labels (0/1 -> uint8) into `images.npy` / `labels.npy`;
    /// returns each patch's particle pixel count.
    static func writeArrays(_ images: H5Planes, _ labels: H5Planes, count: Int, patch: Int, into folder: URL) throws -> [Int] {
        let imagesURL = folder.appendingPathComponent("images.npy"), labelsURL = folder.appendingPathComponent("labels.npy")
        for (url, pixelType) in [(imagesURL, PixelType.float32), (labelsURL, .uint8)] {
            guard FileManager.default.createFile(atPath: url.path, contents: Data(npyHeader(shape: [count, patch, patch], pixelType: pixelType))) else {
                throw DatasetError("\(url.path): cannot create the file")
            }
        }
        let imagesHandle = try FileHandle(forWritingTo: imagesURL), labelsHandle = try FileHandle(forWritingTo: labelsURL)
        defer { try? imagesHandle.close(); try? labelsHandle.close() }
        try imagesHandle.seekToEnd(); try labelsHandle.seekToEnd()
        let plane = patch * patch
        let perChunk = max(1, (32 << 20) / (plane * 8))
        var particles = [Int](repeating: 0, count: count)
        var index = 0
        while index < count {
            let n = min(perChunk, count - index)
            // libhdf5 converts float64 to float32 with C's rounding, as NumPy's astype does.
            let values = try images.readFloats(index, n)
            values.withUnsafeBytes { imagesHandle.write(Data($0)) }
            let labelValues = try labels.readFloats(index, n)
            var bytes = [UInt8](repeating: 0, count: labelValues.count)
            for (offset, value) in labelValues.enumerated() {
                if value == 1 {
                    bytes[offset] = 1
                    particles[index + offset / plane] += 1
                } else if value != 0 {
                    let at = index + offset / plane, pixel = offset % plane
                    throw FormatError(file: labels.url.path, "\(labels.key)[\(at), \(pixel / patch), \(pixel % patch)] is \(value), expected 0 or 1")
                }
            }
            labelsHandle.write(Data(bytes))
            index += n
        }
        try imagesHandle.synchronize(); try labelsHandle.synchronize()
        return particles
    }

    /// The rows of a `patches.csv` beside the images file (an hrtem export puts one there), when
    /// it parses and has exactly `count` rows numbered 0..<count; nil otherwise.
    static func patchRowsBeside(_ images: URL, count: Int) throws -> [PatchRow]? {
        let url = images.deletingLastPathComponent().appendingPathComponent("patches.csv")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return nil }
        var rows: [PatchRow] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() where n > 0 {
            let fields = parseCSVLine(String(line))
            guard fields.count == 6, let p = Int(fields[0]), p == rows.count, let r = Int(fields[3]), let c = Int(fields[4]),
                  let k = Int(fields[5]) else { return nil }
            rows.append(PatchRow(patch: p, session: fields[1], file: fields[2], row: r, column: c, particlePixels: k))
        }
        return rows.count == count ? rows : nil
    }
}

/// A 3-D dataset of an HDF5 file, read a few planes at a time.
final class H5Planes {
    let url: URL
    let key: String
    let shape: [Int]
    private let file: hid_t
    private let dataset: hid_t

    init(url: URL, key: String) throws {
        self.url = url
        self.key = key
        hrtem_h5_quiet()
        guard FileManager.default.isReadableFile(atPath: url.path) else { throw FormatError(file: url.path, "cannot read the file") }
        file = hrtem_h5_open_file_read(url.path)
        guard file >= 0 else { throw FormatError(file: url.path, offset: 0, "not an HDF5 file (libhdf5 cannot open it)") }
        dataset = hrtem_h5_open_dataset(file, key)
        guard dataset >= 0 else {
            _ = hrtem_h5_close_file(file)
            throw FormatError(file: url.path, "no dataset '\(key)' in the file")
        }
        var dims = [hsize_t](repeating: 0, count: 3)
        let rank = hrtem_h5_dataset_shape(dataset, &dims, 3)
        var size = 0
        let kind = hrtem_h5_dataset_kind(dataset, &size)
        guard rank == 3, kind != 0, dims.allSatisfy({ $0 <= hsize_t(Int32.max) }) else {
            _ = hrtem_h5_close_dataset(dataset); _ = hrtem_h5_close_file(file)
            throw FormatError(file: url.path, "dataset '\(key)' is \(rank)-D \(kind == 0 ? "non-numeric" : "numeric"), expected (N, P, P) numbers")
        }
        shape = dims.map { Int($0) }
    }

    /// Planes `index ..< index + count` as float32.
    func readFloats(_ index: Int, _ count: Int) throws -> [Float] {
        var values = [Float](repeating: 0, count: count * shape[1] * shape[2])
        let status = values.withUnsafeMutableBytes {
            hrtem_h5_read_planes(dataset, hsize_t(index), hsize_t(count), hsize_t(shape[1]), hsize_t(shape[2]), 0, $0.baseAddress)
        }
        guard status >= 0 else { throw FormatError(file: url.path, "libhdf5 failed reading \(key)[\(index)..<\(index + count)]") }
        return values
    }

    func close() {
        _ = hrtem_h5_close_dataset(dataset)
        _ = hrtem_h5_close_file(file)
    }
}
