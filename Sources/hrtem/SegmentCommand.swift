import ArgumentParser
import Catalog
import Experiments
import Foundation
import Micrograph
import Preprocessing
import Segmentation

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Segment a whole raw frame (DM3/DM4/TIFF) with a trained model; write the mask as PNG.",
        discussion: """
        The frame is preprocessed as the model's dataset version was (its recipe.json; the
        study's recipe when that folder is gone), cut into the recipe's patch size, segmented
        tile by tile and stitched. The mask is 8-bit, 255 = particle.
        Example: hrtem segment runs/au884-f2 frame.dm3 --out mask.png --overlay overlay.png
        """)

    @Argument(help: "Model folder (model.safetensors + model.json).") var model: String
    @Argument(help: "Raw frame: .dm3, .dm4 or .tif.") var frame: String
    @Option(help: "Mask PNG to write.") var out: String
    @Option(help: "Also write the frame with the mask tinted red (PNG).") var overlay: String?
    @Option(help: "Tile size (default: the recipe's patch size, else 512).") var tile: Int?
    @Option(help: "Threads.") var threads = 2

    func run() throws {
        let segmenter = try FrameSegmenter(modelFolder: URL(fileURLWithPath: model), threads: threads)
        let raw = try readFrame(at: URL(fileURLWithPath: frame))
        let size = tile ?? segmenter.patch
        guard segmenter.accepts(tile: size) else {
            throw ValidationError("tile \(size) is not a multiple of \(segmenter.model.network.architecture.sizeMultiple)")
        }
        let (image, mask) = segmenter.segment(raw.raster, tile: size)
        try writePNG(gray8: mask.map { $0 != 0 ? 255 : 0 }, to: URL(fileURLWithPath: out))
        let particles = mask.pixels.reduce(0) { $0 + Int($1) }
        print("\(out): \(mask.width) x \(mask.height), \(particles) particle pixels (\(String(format: "%.2f", 100 * Double(particles) / Double(max(1, mask.count))))%)")
        if let overlay {
            let sorted = image.pixels.sorted()
            let low = sorted[sorted.count / 100], high = sorted[sorted.count * 99 / 100]
            var rgb = [UInt8](repeating: 0, count: image.count * 3)
            for i in 0..<image.count {
                let gray = UInt8(max(0, min(255, (image.pixels[i] - low) / max(1e-12, high - low) * 255)))
                rgb[3 * i] = mask.pixels[i] != 0 ? UInt8(min(255, Int(gray) / 2 + 128)) : gray
                rgb[3 * i + 1] = mask.pixels[i] != 0 ? gray / 2 : gray
                rgb[3 * i + 2] = mask.pixels[i] != 0 ? gray / 2 : gray
            }
            try writePNG(rgb: rgb, width: image.width, height: image.height, to: URL(fileURLWithPath: overlay))
            print("\(overlay): overlay")
        }
    }
}
