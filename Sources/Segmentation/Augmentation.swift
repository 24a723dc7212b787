import Foundation
import Micrograph
import Preprocessing

/// Gaussian noise augmentation (the study's Fig. 5): x' = (x + N(0, rho^2)) / sqrt(1 + rho^2),
/// rho in units of the image's standard deviation.
public enum NoiseAugmentation: Codable, Hashable, Sendable {
    case none
    /// The same rho for every sample.
    case fixed(Double)
    /// rho ~ U(0, rhoMax) drawn per sample.
    case uniform(Double)

    /// Whether rho is drawn per sample (`uniform`).
    public var drawsRhoPerSample: Bool {
        if case .uniform = self { true } else { false }
    }
}

/// The study's online augmentation of one training sample (side x side), in place:
/// Preprocessing's flip + rotation when `rotate`, then the configured noise, drawing from
/// `random` in that order.
func augmentSample(image: UnsafeMutablePointer<Float>, label: UnsafeMutablePointer<UInt8>, side n: Int, rotate: Bool,
                   noise: NoiseAugmentation, random: inout SplitMix64) {
    let count = n * n
    var raster = Raster(width: n, height: n, pixels: Array(UnsafeBufferPointer(start: image, count: count)))
    if rotate {
        let labels = Raster(width: n, height: n, pixels: Array(UnsafeBufferPointer(start: label, count: count)))
        let augmented = augmentOnline(image: raster, label: labels, generator: &random)
        raster = augmented.image
        augmented.label.pixels.withUnsafeBufferPointer { label.update(from: $0.baseAddress!, count: count) }
    }
    switch noise {
    case .none: break
    case .fixed(let rho): if rho > 0 { addNoise(&raster, rho: rho, generator: &random) }
    case .uniform(let maximum): addRandomNoise(&raster, rhoMax: maximum, generator: &random)
    }
    raster.pixels.withUnsafeBufferPointer { image.update(from: $0.baseAddress!, count: count) }
}
