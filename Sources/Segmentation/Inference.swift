import Foundation
import Micrograph

/// Segments a whole (already preprocessed) frame: the frame is cut into non-overlapping
/// `tile` x `tile` tiles in raster order (the study's patching), the last row and column of
/// tiles padded with zeros (the standardized frame's mean) where the frame is not a multiple of
/// `tile`, run `batch` tiles at a time in evaluation mode, and the hard class-1 predictions
/// stitched back. Returns a 0/1 mask the size of `image`.
/// - Precondition: `tile` is a multiple of the network's `sizeMultiple`.
public func segmentFrame(network: ResidualUNet, image: Raster<Float>, tile: Int = 512, batch: Int = 4) -> Raster<UInt8> {
    precondition(tile % network.architecture.sizeMultiple == 0, "tile \(tile) is not a multiple of \(network.architecture.sizeMultiple)")
    let rows = (image.height + tile - 1) / tile, columns = (image.width + tile - 1) / tile
    var mask = Raster<UInt8>(width: image.width, height: image.height, repeating: 0)
    let tiles = (0..<(rows * columns)).map { ($0 / columns, $0 % columns) }
    var start = 0
    while start < tiles.count {
        let group = tiles[start..<min(tiles.count, start + batch)]
        let input = Tensor([group.count, 1, tile, tile])
        for (index, (r, c)) in group.enumerated() {
            let target = input.plane(index, 0)
            for y in 0..<tile where r * tile + y < image.height {
                for x in 0..<tile where c * tile + x < image.width {
                    target[y * tile + x] = image.pixels[(r * tile + y) * image.width + c * tile + x]
                }
            }
        }
        let predicted = hardPrediction(network.forward(input, training: false))
        for (index, (r, c)) in group.enumerated() {
            for y in 0..<tile where r * tile + y < image.height {
                for x in 0..<tile where c * tile + x < image.width {
                    mask.pixels[(r * tile + y) * image.width + c * tile + x] = predicted[index * tile * tile + y * tile + x]
                }
            }
        }
        start += group.count
    }
    return mask
}
