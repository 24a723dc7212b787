import Foundation
import Micrograph

/// The eight symmetries of a square patch, in the study's order: identity, rot90 x1..3
/// (NumPy `rot90`, counter-clockwise), flip left-right, flip left-right then rot90 x1..3.
public enum DihedralTransform: Int, Sendable, CaseIterable, Codable {
    case identity, rotate90, rotate180, rotate270, flipLR, flipLRRotate90, flipLRRotate180, flipLRRotate270

    /// Where output (row, column) reads from, for a size x size patch. Inlinable: other
    /// modules (the trainer's patch copies) call it once per pixel.
    @inlinable @inline(__always) public func source(_ row: Int, _ column: Int, _ size: Int) -> (Int, Int) {
        let last = size - 1
        // np.rot90(m, k): out[i, j] = m[j, last - i] for k = 1
        var (r, c) = (row, column)
        let turns = rawValue % 4
        for _ in 0..<turns { (r, c) = (c, last - r) }
        if rawValue >= 4 { c = last - c }
        return (r, c)
    }
}

/// A square patch under one of the eight symmetries (the study's x8 expansion of train,
/// validation and test; the trainer calls this, nothing is stored x8 on disk). Inlinable so
/// callers in other modules get it specialized for their pixel type.
@inlinable
public func dihedral<T>(_ patch: Raster<T>, _ transform: DihedralTransform) -> Raster<T> {
    precondition(patch.width == patch.height, "dihedral transforms need a square patch")
    let n = patch.width
    var out = [T]()
    out.reserveCapacity(n * n)
    for r in 0..<n {
        for c in 0..<n {
            let (sr, sc) = transform.source(r, c, n)
            out.append(patch.pixels[sr * n + sc])
        }
    }
    return Raster(width: n, height: n, pixels: out)
}

/// Rotates an image/label pair counter-clockwise (as displayed, rows down) by `degrees` about
/// the patch centre `((n-1)/2, (n-1)/2)`, bilinear, same size (scikit-image
/// `rotate(x, angle, order=1, mode='constant', cval=fill)` semantics). Outside pixels read as
/// `fill` for the image and 0 for the label; the label (0/1) is interpolated then truncated
/// toward zero, so a rotated label loses about one edge pixel, as in the study.
public func rotated(image: Raster<Float>, label: Raster<UInt8>, degrees: Double, fill: Float)
    -> (image: Raster<Float>, label: Raster<UInt8>) {
    precondition(image.width == label.width && image.height == label.height)
    let w = image.width, h = image.height
    let cx = Double(w) / 2 - 0.5, cy = Double(h) / 2 - 0.5
    let angle = degrees * .pi / 180
    let cosA = cos(angle), sinA = sin(angle)
    var outImage = [Float](repeating: fill, count: w * h)
    var outLabel = [UInt8](repeating: 0, count: w * h)
    image.pixels.withUnsafeBufferPointer { source in
        label.pixels.withUnsafeBufferPointer { sourceLabel in
            outImage.withUnsafeMutableBufferPointer { outImage in
                outLabel.withUnsafeMutableBufferPointer { outLabel in
                    // The four taps in the order (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1),
                    // zero weights skipped, outside taps reading `fill` (image) and 0 (label).
                    @inline(__always) func tap(_ yy: Int, _ xx: Int, _ weight: Double, _ value: inout Double, _ mask: inout Double) {
                        guard weight != 0 else { return }
                        if yy >= 0, yy < h, xx >= 0, xx < w {
                            value += weight * Double(source[yy * w + xx])
                            mask += sourceLabel[yy * w + xx] != 0 ? weight : 0
                        } else {
                            value += weight * Double(fill)
                        }
                    }
                    for r in 0..<h {
                        for c in 0..<w {
                            let dx = Double(c) - cx, dy = Double(r) - cy
                            let x = cx + cosA * dx - sinA * dy
                            let y = cy + sinA * dx + cosA * dy
                            let x0 = Int(x.rounded(.down)), y0 = Int(y.rounded(.down))
                            let tx = x - Double(x0), ty = y - Double(y0)
                            var value = 0.0, mask = 0.0
                            tap(y0, x0, (1 - ty) * (1 - tx), &value, &mask)
                            tap(y0, x0 + 1, (1 - ty) * tx, &value, &mask)
                            tap(y0 + 1, x0, ty * (1 - tx), &value, &mask)
                            tap(y0 + 1, x0 + 1, ty * tx, &value, &mask)
                            outImage[r * w + c] = Float(value)
                            outLabel[r * w + c] = mask >= 1 - 1e-9 ? 1 : 0
                        }
                    }
                }
            }
        }
    }
    return (Raster(width: w, height: h, pixels: outImage), Raster(width: w, height: h, pixels: outLabel))
}

/// The median of the image's background pixels (label 0): the study's rotation fill value.
/// NumPy's median; 0 when the patch has no background.
public func backgroundMedian(image: Raster<Float>, label: Raster<UInt8>) -> Float {
    let background = zip(image.pixels, label.pixels).compactMap { $1 == 0 ? $0 : nil }
    guard !background.isEmpty else { return 0 }
    return Float(background.withUnsafeBufferPointer { median($0) })
}

/// The study's online augmentation of one training sample (always from the stored sample):
/// with probability 0.5, flip (up-down, left-right or none, 1/3 each) then rotate by a uniform
/// angle in [0, 360) degrees, filled with the background median. Draws from `generator` in a
/// fixed order (coin, flip, angle), so a seed fixes the result.
public func augmentOnline(image: Raster<Float>, label: Raster<UInt8>, generator: inout SplitMix64)
    -> (image: Raster<Float>, label: Raster<UInt8>) {
    guard generator.nextUnitDouble() < 0.5 else { return (image, label) }
    let flip = Int(generator.nextUnitDouble() * 3)
    let degrees = generator.nextUnitDouble() * 360
    var img = image, lab = label
    if flip == 0 { (img, lab) = (flippedUpDown(img), flippedUpDown(lab)) }
    if flip == 1 { (img, lab) = (dihedral(img, .flipLR), dihedral(lab, .flipLR)) }
    return rotated(image: img, label: lab, degrees: degrees, fill: backgroundMedian(image: img, label: lab))
}

func flippedUpDown<T>(_ raster: Raster<T>) -> Raster<T> {
    var out = [T]()
    out.reserveCapacity(raster.count)
    for r in stride(from: raster.height - 1, through: 0, by: -1) {
        out.append(contentsOf: raster.pixels[(r * raster.width)..<((r + 1) * raster.width)])
    }
    return Raster(width: raster.width, height: raster.height, pixels: out)
}

/// Gaussian noise augmentation (the study's Fig. 5): `x' = (x + N(0, rho^2)) / sqrt(1 + rho^2)`,
/// rho in units of the image std (images are standardized, so the variance stays 1). One
/// deviate per pixel from `generator`, in raster order.
public func addNoise(_ image: inout Raster<Float>, rho: Double, generator: inout SplitMix64) {
    let scale = 1 / (1 + rho * rho).squareRoot()
    for i in 0..<image.count {
        image.pixels[i] = Float((Double(image.pixels[i]) + rho * generator.nextGaussian()) * scale)
    }
}

/// Noise with rho drawn per sample from U(0, rhoMax), then `addNoise`. Returns the rho used.
@discardableResult
public func addRandomNoise(_ image: inout Raster<Float>, rhoMax: Double, generator: inout SplitMix64) -> Double {
    let rho = generator.nextUnitDouble() * rhoMax
    addNoise(&image, rho: rho, generator: &generator)
    return rho
}
