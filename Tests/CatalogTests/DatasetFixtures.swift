import Catalog
import Foundation
import Micrograph
import TestSupport

/// A data folder with a catalog of small synthetic frames (DM4 float32) and PNG labels,
/// registered as ingested, for dataset-build tests.
struct DatasetFixture {
    let root: URL
    let dataFolder: DataFolder
    let store: CatalogStore
    let files: URL

    /// `frames` frames of `size` x `size` across `sessions` sessions, material Au, size 5,
    /// dose 423, pixel scale 0.02.
    init(frames: Int = 6, sessions: Int = 2, size: Int = 192, seed: UInt64 = 1, root: URL? = nil) throws {
        self.root = try root ?? makeTemporaryFolder("hrtem-dataset")
        dataFolder = DataFolder(url: self.root.appendingPathComponent("data"))
        files = self.root.appendingPathComponent("files")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        store = try CatalogStore(folder: dataFolder)
        var random = SplitMix64(seed: seed)
        for f in 0..<frames {
            let session = "2021_10_0\(f % sessions + 1) 5nm Au, session \(f % sessions)"
            let name = "2021100\(f % sessions + 1)_Au_UTC_330kx_2650e_0p1596s_\(String(format: "%02d", f)).dm4"
            var label = [UInt8](repeating: 0, count: size * size)
            for _ in 0..<5 {
                let cr = random.nextUnitDouble() * Double(size), cc = random.nextUnitDouble() * Double(size)
                let radius = 6 + random.nextUnitDouble() * 14
                for r in 0..<size {
                    for c in 0..<size where (Double(r) - cr) * (Double(r) - cr) + (Double(c) - cc) * (Double(c) - cc) <= radius * radius {
                        label[r * size + c] = 255
                    }
                }
            }
            var pixels = [Float](repeating: 0, count: size * size)
            for r in 0..<size {
                for c in 0..<size {
                    let mean = 2000 * (1 + 0.3 * Double(r) / Double(size) - 0.1 * Double(c) / Double(size)) * (label[r * size + c] != 0 ? 0.8 : 1)
                    pixels[r * size + c] = Float(mean + mean.squareRoot() * random.nextGaussian())
                }
            }
            pixels[size * 10 + 17] = 30000
            let frameURL = files.appendingPathComponent(name)
            let labelURL = files.appendingPathComponent(name.replacingOccurrences(of: ".dm4", with: "_label.png"))
            try writeDM(Raster(width: size, height: size, pixels: pixels), to: frameURL, pixelSizeNM: 0.02)
            try writePNG(gray8: Raster(width: size, height: size, pixels: label), to: labelURL)
            let record = try store.upsertFrame(FrameRecord(
                session: session, fileName: name, metadataRow: f, material: "Au", particleSizeNm: 5, shape: "Sphere",
                support: "UT Carbon", instrument: "Team05", dose: 423, pixelScaleNm: 0.02, magnificationKx: 330,
                path: frameURL.path, byteSize: 0, sha256: try sha256Hex(fileAt: frameURL), format: "dm4",
                width: size, height: size, pixelType: "float32"))
            try store.upsertLabel(LabelRecord(frameId: record.id!, source: "png", path: labelURL.path,
                                              sha256: try sha256Hex(fileAt: labelURL), format: "png", width: size, height: size))
        }
    }

    var recipe: DatasetRecipe {
        var recipe = DatasetRecipe(name: "au5", query: "material = \"Au\" and size = 5 and dose ~ 423 +- 20")
        recipe.patch = 64
        recipe.stride = 64
        recipe.minParticlePixels = 100
        recipe.folds = 3
        return recipe
    }

    func remove() { try? FileManager.default.removeItem(at: root) }
}
