import Micrograph

/// How a whole frame's intensities are rescaled after flat-field correction (the study's preprocessing, step 3).
public enum Rescaling: String, Sendable, Codable, CaseIterable {
    /// `(x - mean) / std`, population std (NumPy's `.std()`, ddof 0). The study's choice.
    case standardize
    /// `(x - min) / (max - min)`.
    case normalize
    /// `(x - p1) / (p99 - p1)` clipped to [0, 1], p1 and p99 NumPy's default ('linear')
    /// 1st and 99th percentiles, as Digital Micrograph displays.
    case histogram
}

/// The affine map `(x - offset) * factor`, optionally clipped to [0, 1], that a rescaling resolves
/// to on one frame.
public struct RescalingMap: Sendable, Equatable, Codable {
    public var offset: Double
    public var divisor: Double
    public var clipsToUnitInterval: Bool

    /// Inlinable: callers in other modules apply it once per pixel.
    @inlinable @inline(__always) public func apply(_ x: Double) -> Double {
        let y = (x - offset) / divisor
        return clipsToUnitInterval ? min(max(y, 0), 1) : y
    }
}

/// NumPy's `np.percentile(values, q)` with the default 'linear' method (same virtual index and
/// the same two-sided lerp as NumPy 2), by exact selection.
public func percentile(_ values: UnsafeBufferPointer<Double>, _ q: Double) -> Double {
    percentiles(values, [q])[0]
}

/// Several percentiles with one selection.
public func percentiles(_ values: UnsafeBufferPointer<Double>, _ qs: [Double]) -> [Double] {
    let n = values.count
    precondition(n > 0)
    var plans = [(Int, Int, Double)]()
    for q in qs {
        let quantile = q / 100
        let virtual = (Double(n) * quantile + (1 + quantile * (1 - 1 - 1))) - 1
        let below = min(max(virtual.rounded(.down), 0), Double(n - 1))
        let gamma = virtual - virtual.rounded(.down)
        let lower = Int(below)
        let upper = min(lower + 1, n - 1)
        plans.append((lower, upper, virtual < 0 ? 0 : (virtual > Double(n - 1) ? 0 : gamma)))
    }
    let ranks = Array(Set(plans.flatMap { [$0.0, $0.1] })).sorted()
    let values = orderStatistics(values, ranks: ranks)
    var byRank = [Int: Double]()
    for (r, v) in zip(ranks, values) { byRank[r] = v }
    return plans.map { lower, upper, t in
        let a = byRank[lower]!, b = byRank[upper]!
        let diff = b - a
        var result = t >= 0.5 ? b - diff * (1 - t) : a + diff * t
        if a == b { result = a }
        return result
    }
}

/// Resolves a rescaling on a frame given as rows of `Double` produced on demand
/// (`fillRow(r, buffer)` writes row r into the buffer); `materialized` is needed for
/// `.histogram` only (the percentiles need every value at once).
func resolveRescaling(_ method: Rescaling, height: Int, width: Int,
                      fillRow: (Int, UnsafeMutableBufferPointer<Double>) -> Void) -> RescalingMap {
    var line = [Double](repeating: 0, count: width)
    let count = Double(width * height)
    switch method {
    case .standardize:
        // one pass: sums of d = x - shift and d^2, shift = the first row's mean (close to the
        // frame mean, so the variance formula loses nothing to cancellation in Double)
        var shift = 0.0, total = 0.0, squares = 0.0
        line.withUnsafeMutableBufferPointer { line in
            for r in 0..<height {
                fillRow(r, line)
                if r == 0 {
                    var s = 0.0
                    for c in 0..<width { s += line[c] }
                    shift = s / Double(width)
                }
                var s = 0.0, q = 0.0
                for c in 0..<width { let d = line[c] - shift; s += d; q += d * d }
                total += s
                squares += q
            }
        }
        let meanOffset = total / count
        let variance = max(0, squares / count - meanOffset * meanOffset)
        return RescalingMap(offset: shift + meanOffset, divisor: variance.squareRoot(), clipsToUnitInterval: false)
    case .normalize:
        var low = Double.infinity, high = -Double.infinity
        line.withUnsafeMutableBufferPointer { line in
            for r in 0..<height {
                fillRow(r, line)
                for c in 0..<width { low = min(low, line[c]); high = max(high, line[c]) }
            }
        }
        return RescalingMap(offset: low, divisor: high - low, clipsToUnitInterval: false)
    case .histogram:
        var all = [Double](repeating: 0, count: width * height)
        all.withUnsafeMutableBufferPointer { all in
            for r in 0..<height {
                fillRow(r, UnsafeMutableBufferPointer(rebasing: all[(r * width)..<((r + 1) * width)]))
            }
        }
        let p = all.withUnsafeBufferPointer { percentiles($0, [1, 99]) }
        return RescalingMap(offset: p[0], divisor: p[1] - p[0], clipsToUnitInterval: true)
    }
}

/// Rescales a whole frame (`Double` in, `Double` out); the result matches NumPy's to 1e-12 relative.
public func rescaled(_ image: Raster<Double>, _ method: Rescaling) -> Raster<Double> {
    let map = image.pixels.withUnsafeBufferPointer { pixels in
        resolveRescaling(method, height: image.height, width: image.width) { r, line in
            for c in 0..<image.width { line[c] = pixels[r * image.width + c] }
        }
    }
    return image.map { map.apply($0) }
}
