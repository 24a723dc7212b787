import CHDF5
import Foundation
import Micrograph
import Preprocessing

/// Copies a dataset version out of the data folder.
public enum DatasetExport {
    public enum Format: String, Sendable, CaseIterable { case npy, hdf5 }

    /// Writes the version's files into `folder` and returns what was written. Existing files are
    /// never overwritten; each file appears under its final name only when complete.
    /// - `npy`: the version's own files (images.npy, labels.npy, patches.csv, folds.json,
    ///   recipe.json, MANIFEST), byte for byte.
    /// - `hdf5`: the study's layout: `<Name>_Images.h5` with dataset `images` (N, P, P) float64
    ///   and `<Name>_Labels.h5` with dataset `labels` (N, P, P) float32 0/1, streamed a few
    ///   patches at a time; plus patches.csv, folds.json and recipe.json beside them.
    /// - Throws: `DatasetError` naming the file that exists or could not be written.
    @discardableResult
    public static func export(_ version: DatasetVersion, to folder: URL, format: Format) throws -> [URL] {
        let fm = FileManager.default
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        let copies = format == .npy ? VersionFolder.dataFiles + [VersionFolder.manifestName]
                                     : [VersionFolder.patchesName, VersionFolder.foldsName, VersionFolder.recipeName]
        let h5Names = format == .hdf5 ? ["\(version.name)_Images.h5", "\(version.name)_Labels.h5"] : []
        for name in copies + h5Names where fm.fileExists(atPath: folder.appendingPathComponent(name).path) {
            throw DatasetError("\(folder.appendingPathComponent(name).path) exists; not overwriting")
        }
        var written = [URL]()
        if format == .hdf5 {
            written.append(try writeHDF5(from: version.imagesFile, to: folder.appendingPathComponent(h5Names[0]), key: "images",
                                         float64: true, patch: version.patchSize))
            written.append(try writeHDF5(from: version.labelsFile, to: folder.appendingPathComponent(h5Names[1]), key: "labels",
                                         float64: false, patch: version.patchSize))
        }
        for name in copies {
            let target = folder.appendingPathComponent(name)
            let temporary = folder.appendingPathComponent(".\(name).partial")
            try? fm.removeItem(at: temporary)
            try fm.copyItem(at: version.folder.appendingPathComponent(name), to: temporary)
            try fm.moveItem(at: temporary, to: target)
            written.append(target)
        }
        return written
    }

    /// Streams an (N, P, P) float32 or uint8 NPY file into an HDF5 dataset.
    static func writeHDF5(from npy: URL, to target: URL, key: String, float64: Bool, patch: Int) throws -> URL {
        let handle = try FileHandle(forReadingFrom: npy)
        defer { try? handle.close() }
        let preamble = try handle.read(upToCount: 12) ?? Data()
        guard preamble.count >= 10 else { throw DatasetError("\(npy.path): not an NPY file") }
        let headerLength = preamble[6] == 1 ? 10 + Int(preamble[8]) | Int(preamble[9]) << 8
                                           : 12 + (Int(preamble[8]) | Int(preamble[9]) << 8 | Int(preamble[10]) << 16 | Int(preamble[11]) << 24)
        try handle.seek(toOffset: 0)
        let header = try npyShapeAndType(String(decoding: try handle.read(upToCount: headerLength) ?? Data(), as: UTF8.self), file: npy.path)
        guard header.shape.count == 3, header.shape[1] == patch, header.shape[2] == patch,
              header.pixelType == .float32 || header.pixelType == .uint8 else {
            throw DatasetError("\(npy.path): expected (N, \(patch), \(patch)) float32 or uint8, found \(header.shape) \(header.pixelType)")
        }
        let count = header.shape[0], plane = patch * patch
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).partial")
        try? FileManager.default.removeItem(at: temporary)
        hrtem_h5_quiet()
        let file = hrtem_h5_create_file(temporary.path)
        guard file >= 0 else { throw DatasetError("\(temporary.path): libhdf5 cannot create the file") }
        var fileOpen = true
        defer { if fileOpen { _ = hrtem_h5_close_file(file) } }
        let dataset = hrtem_h5_create_dataset_3d(file, key, float64 ? 1 : 0, hsize_t(count), hsize_t(patch), hsize_t(patch))
        guard dataset >= 0 else { throw DatasetError("\(temporary.path): libhdf5 cannot create dataset \(key)") }
        try handle.seek(toOffset: UInt64(headerLength))
        let perChunk = max(1, (32 << 20) / (plane * 8))
        var index = 0
        while index < count {
            let n = min(perChunk, count - index)
            let bytes = try handle.read(upToCount: n * plane * header.pixelType.byteCount) ?? Data()
            guard bytes.count == n * plane * header.pixelType.byteCount else {
                _ = hrtem_h5_close_dataset(dataset)
                throw DatasetError("\(npy.path): truncated at patch \(index)")
            }
            var status: herr_t = 0
            if float64 {
                let values: [Double] = bytes.withUnsafeBytes { raw in
                    header.pixelType == .float32 ? raw.bindMemory(to: Float.self).map(Double.init) : raw.map(Double.init)
                }
                status = values.withUnsafeBytes { hrtem_h5_write_planes(dataset, hsize_t(index), hsize_t(n), hsize_t(patch), hsize_t(patch), 1, $0.baseAddress) }
            } else {
                let values: [Float] = bytes.withUnsafeBytes { raw in
                    header.pixelType == .float32 ? Array(raw.bindMemory(to: Float.self)) : raw.map { $0 != 0 ? 1 : 0 }
                }
                status = values.withUnsafeBytes { hrtem_h5_write_planes(dataset, hsize_t(index), hsize_t(n), hsize_t(patch), hsize_t(patch), 0, $0.baseAddress) }
            }
            guard status >= 0 else {
                _ = hrtem_h5_close_dataset(dataset)
                throw DatasetError("\(temporary.path): libhdf5 failed writing patches \(index)..<\(index + n)")
            }
            index += n
        }
        _ = hrtem_h5_close_dataset(dataset)
        fileOpen = false
        guard hrtem_h5_close_file(file) >= 0 else { throw DatasetError("\(temporary.path): libhdf5 failed closing the file") }
        try FileManager.default.moveItem(at: temporary, to: target)
        return target
    }
}

/// Shape and element type from an NPY header (hrtem's own files: C order, little-endian).
func npyShapeAndType(_ header: String, file: String) throws -> (shape: [Int], pixelType: PixelType) {
    let pixelType: PixelType
    if header.contains("'<f4'") { pixelType = .float32 } else if header.contains("'|u1'") { pixelType = .uint8 } else {
        throw DatasetError("\(file): only float32 and uint8 arrays can be exported")
    }
    guard let shapeKey = header.range(of: "'shape':"), let open = header[shapeKey.upperBound...].firstIndex(of: "("),
          let close = header[open...].firstIndex(of: ")") else { throw DatasetError("\(file): unreadable NPY header") }
    let shape = header[header.index(after: open)..<close].split(separator: ",").compactMap {
        Int($0.trimmingCharacters(in: .whitespaces))
    }
    return (shape, pixelType)
}
