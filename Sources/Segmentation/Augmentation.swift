import Foundation
import Micrograph

/// Gaussian noise augmentation (the study's Fig. 5): x' = (x + N(0, rho^2)) / sqrt(1 + rho^2),
/// rho in units of the image's standard deviation.
public enum NoiseAugmentation: Codable, Equatable, Sendable {
    case none
    /// The same rho for every sample.
    case fixed(Double)
    /// rho ~ U(0, rhoMax) drawn per sample.
    case uniform(Double)
}

/// The study's online augmentation of one training sample, in place (side x side patch): with
/// probability 0.5, flip (up-down, left-right or none, 1/3 each) then rotate by a uniform angle
/// in [0, 360) degrees about the centre, bilinear, no resize; the image is filled with the median
/// of its background pixels, the label with 0, and the interpolated label is truncated (so a
/// rotated label loses about one edge pixel).
func augmentOnline(image: UnsafeMutablePointer<Float>, label: UnsafeMutablePointer<UInt8>, side n: Int,
                   random: inout SplitMix64) {
    guard random.nextUnitDouble() < 0.5 else { return }
    let flip = Int(random.nextUnitDouble() * 3)
    if flip == 0 || flip == 1 {
        for i in 0..<(flip == 0 ? n / 2 : n) {
            for j in 0..<(flip == 0 ? n : n / 2) {
                let (r, c) = flip == 0 ? (n - 1 - i, j) : (i, n - 1 - j)
                swap(&image[i * n + j], &image[r * n + c])
                swap(&label[i * n + j], &label[r * n + c])
            }
        }
    }
    let angle = random.nextUnitDouble() * 2 * Double.pi
    var background: [Float] = []
    background.reserveCapacity(n * n)
    for i in 0..<(n * n) where label[i] == 0 { background.append(image[i]) }
    var fill: Float = 0
    if !background.isEmpty {
        background.sort()
        let middle = background.count / 2
        fill = background.count % 2 == 1 ? background[middle] : (background[middle - 1] + background[middle]) / 2
    }
    let sourceImage = Array(UnsafeBufferPointer(start: image, count: n * n))
    let sourceLabel = Array(UnsafeBufferPointer(start: label, count: n * n))
    let centre = Double(n - 1) / 2, cosine = cos(angle), sine = sin(angle)
    for i in 0..<n {
        for j in 0..<n {
            let y = Double(i) - centre, x = Double(j) - centre
            let sy = cosine * y - sine * x + centre, sx = sine * y + cosine * x + centre
            let y0 = Int(sy.rounded(.down)), x0 = Int(sx.rounded(.down))
            let fy = sy - Double(y0), fx = sx - Double(x0)
            var value = 0.0, mask = 0.0
            for (dy, wy) in [(0, 1 - fy), (1, fy)] {
                for (dx, wx) in [(0, 1 - fx), (1, fx)] {
                    let yy = y0 + dy, xx = x0 + dx
                    let w = wy * wx
                    if yy >= 0, yy < n, xx >= 0, xx < n {
                        value += w * Double(sourceImage[yy * n + xx])
                        mask += w * Double(sourceLabel[yy * n + xx])
                    } else {
                        value += w * Double(fill)
                    }
                }
            }
            image[i * n + j] = Float(value)
            label[i * n + j] = mask >= 1 - 1e-9 ? 1 : 0
        }
    }
}

/// Adds the configured noise to one sample in place.
func addNoise(_ image: UnsafeMutablePointer<Float>, count: Int, _ noise: NoiseAugmentation, random: inout SplitMix64) {
    let rho: Double
    switch noise {
    case .none: return
    case .fixed(let value): rho = value
    case .uniform(let maximum): rho = random.nextUnitDouble() * maximum
    }
    guard rho > 0 else { return }
    let scale = 1 / (1 + rho * rho).squareRoot()
    for i in 0..<count { image[i] = Float((Double(image[i]) + rho * random.nextGaussian()) * scale) }
}
