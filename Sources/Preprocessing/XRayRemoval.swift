import Micrograph

/// What x-ray removal did to a frame.
public struct XRayRemovalReport: Sendable, Equatable, Codable {
    /// Negative pixels set to 0 before detection.
    public var negativePixelsClipped: Int
    /// Outliers replaced in each pass that found any (at most `maxPasses` entries).
    public var outliersPerPass: [Int]
    /// Outliers on the frame's border, replaced by the frame mean rather than a neighbour mean.
    public var borderOutliers: Int
    /// The detection limit (median + threshold) of each pass that ran, in counts.
    public var limits: [Double]

    public var totalOutliers: Int { outliersPerPass.reduce(0, +) }
}

/// Removes x-ray hits from a raw frame in place, as the study does (the study's preprocessing, step 1).
///
/// 1. Negative pixels become 0.
/// 2. Outliers are pixels with `Double(pixel) > median + threshold`, the median being NumPy's
///    (mean of the two middle values for an even count, in `Double`).
/// 3. Outliers are visited brightest first (equal values in raster order); each becomes the mean
///    of its 8 neighbours (centre excluded, neighbours already fixed count with their new value),
///    summed in `Double` in row-major neighbour order, divided by 8, rounded to `Float`. A border
///    outlier becomes the mean of the whole frame at that moment (compensated `Double` sum,
///    rounded to `Float`).
/// 4. Detection runs again on the result; at most `maxPasses` passes.
///
/// Element type: `Float` (raw camera counts as the DM file stores them). The result is exactly
/// the NumPy reference's (`Benchmarks/peers/preprocessing_reference.py`, `remove_xrays`).
/// Complexity: O(n) per pass (radix-select median, one scan) plus O(k log k) for k outliers.
@discardableResult
public func removeXRays(_ image: inout Raster<Float>, threshold: Double = 1500, maxPasses: Int = 2) -> XRayRemovalReport {
    let width = image.width, height = image.height
    var report = XRayRemovalReport(negativePixelsClipped: 0, outliersPerPass: [], borderOutliers: 0, limits: [])
    guard width > 0, height > 0 else { return report }
    image.pixels.withUnsafeMutableBufferPointer { pixels in
        var clipped = 0
        for i in 0..<pixels.count where pixels[i] < 0 { pixels[i] = 0; clipped += 1 }
        report.negativePixelsClipped = clipped
        var outliers = [Int]()
        for _ in 0..<max(0, maxPasses) {
            let limit = median(UnsafeBufferPointer(pixels)) + threshold
            outliers.removeAll(keepingCapacity: true)
            for i in 0..<pixels.count where Double(pixels[i]) > limit { outliers.append(i) }
            if outliers.isEmpty { break }
            report.limits.append(limit)
            outliers.sort { a, b in
                let va = pixels[a], vb = pixels[b]
                return va != vb ? va > vb : a < b
            }
            for index in outliers {
                let row = index / width, column = index % width
                if row == 0 || column == 0 || row == height - 1 || column == width - 1 {
                    pixels[index] = Float(compensatedSum(UnsafeBufferPointer(pixels)) / Double(pixels.count))
                    report.borderOutliers += 1
                } else {
                    let above = index - width, below = index + width
                    var sum = 0.0
                    sum += Double(pixels[above - 1]); sum += Double(pixels[above]); sum += Double(pixels[above + 1])
                    sum += Double(pixels[index - 1]); sum += Double(pixels[index + 1])
                    sum += Double(pixels[below - 1]); sum += Double(pixels[below]); sum += Double(pixels[below + 1])
                    pixels[index] = Float(sum / 8)
                }
            }
            report.outliersPerPass.append(outliers.count)
        }
    }
    return report
}

/// Neumaier-compensated sum in `Double`: for `Float` inputs of one frame it equals the exactly
/// rounded sum (what Python's `math.fsum` returns) except in pathological cases.
func compensatedSum(_ values: UnsafeBufferPointer<Float>) -> Double {
    var sum = 0.0, compensation = 0.0
    for value in values {
        let x = Double(value)
        let t = sum + x
        if abs(sum) >= abs(x) { compensation += (sum - t) + x } else { compensation += (x - t) + sum }
        sum = t
    }
    return sum + compensation
}
