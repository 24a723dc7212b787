import Foundation
import Micrograph

/// Segments a whole (already preprocessed) frame: the frame is cut into non-overlapping
/// `tile` x `tile` tiles in raster order (the study's patching), the last row and column of
/// tiles padded with zeros (the standardized frame's mean) where the frame is not a multiple of
/// `tile`, run `batch` tiles at a time in evaluation mode, and the hard class-1 predictions
/// stitched back. Returns a 0/1 mask the size of `image`.
/// - Precondition: `tile` is a multiple of the network's `sizeMultiple`.
public func segmentFrame(network: ResidualUNet, image: Raster<Float>, tile: Int = 512, batch: Int = 4) -> Raster<UInt8> {
    var mask = Raster<UInt8>(width: image.width, height: image.height, repeating: 0)
    forEachTiledPrediction(network: network, image: image, tile: tile, batch: batch) { logits, group in
        let predicted = hardPrediction(logits)
        for (index, (r, c)) in group.enumerated() {
            for y in 0..<tile where r * tile + y < image.height {
                for x in 0..<tile where c * tile + x < image.width {
                    mask.pixels[(r * tile + y) * image.width + c * tile + x] = predicted[index * tile * tile + y * tile + x]
                }
            }
        }
    }
    return mask
}
