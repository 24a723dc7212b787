import Foundation
import Micrograph

/// The three degree-2 Bernstein polynomials at `linspace(0, 1, count)` (NumPy's spacing: i * step,
/// the last point exactly 1): `[(1-t)^2, 2t(1-t), t^2]`.
public func bernsteinBasis(count: Int) -> [[Double]] {
    var t = [Double](repeating: 0, count: count)
    if count > 1 {
        let step = 1.0 / Double(count - 1)
        for i in 0..<count { t[i] = Double(i) * step }
        t[count - 1] = 1
    }
    return [t.map { (1 - $0) * (1 - $0) }, t.map { 2 * $0 * (1 - $0) }, t.map { $0 * $0 }]
}

/// One axis of scikit-image's `rescale(image, scale, order=1, anti_aliasing=True)` (mode
/// 'reflect'): a Gaussian of sigma `max(0, (n/m - 1)/2)` (SciPy's kernel, radius
/// `Int(4 sigma + 0.5)`, mirror boundary) followed by linear interpolation at input coordinate
/// `(o + 0.5) n/m - 0.5` for output o (SciPy `zoom`, `grid_mode=True`), combined into one
/// sparse weight row per output sample.
public struct ResamplingAxis: Sendable {
    public let inputCount: Int
    public let outputCount: Int
    /// For output o: its first input index and the weights of the consecutive inputs from there.
    public let starts: [Int]
    public let weights: [[Double]]

    public init(inputCount n: Int, scale: Double) {
        let m = max(1, Int((Double(n) * scale).rounded(.toNearestOrEven)))
        inputCount = n
        outputCount = m
        let factor = Double(n) / Double(m)
        let sigma = max(0, (factor - 1) / 2)
        var kernel: [Double] = [1]
        var radius = 0
        if sigma > 0 {
            radius = Int(4 * sigma + 0.5)
            kernel = (-radius...radius).map { exp(-0.5 / (sigma * sigma) * Double($0 * $0)) }
            let total = kernel.reduce(0, +)
            kernel = kernel.map { $0 / total }
        }
        func mirror(_ i: Int) -> Int {
            guard n > 1 else { return 0 }
            let period = 2 * (n - 1)
            var j = i % period
            if j < 0 { j += period }
            return j < n ? j : period - j
        }
        var starts = [Int](), weights = [[Double]]()
        for o in 0..<m {
            let x = (Double(o) + 0.5) * factor - 0.5
            let low = Int(x.rounded(.down))
            let t = x - Double(low)
            var contributions = [Int: Double]()
            for (sample, w) in [(low, 1 - t), (low + 1, t)] where w != 0 {
                let s = mirror(sample)
                for k in -radius...radius {
                    contributions[mirror(s + k), default: 0] += w * kernel[k + radius]
                }
            }
            let first = contributions.keys.min() ?? 0, last = contributions.keys.max() ?? 0
            var row = [Double](repeating: 0, count: last - first + 1)
            for (i, w) in contributions { row[i - first] = w }
            starts.append(first)
            weights.append(row)
        }
        self.starts = starts
        self.weights = weights
    }

    /// This axis applied to a vector.
    public func apply(_ vector: [Double]) -> [Double] {
        precondition(vector.count == inputCount)
        return (0..<outputCount).map { o in
            var s = 0.0
            for (k, w) in weights[o].enumerated() { s += w * vector[starts[o] + k] }
            return s
        }
    }
}

/// scikit-image `rescale(image, scale, order=1, anti_aliasing=True)` of a frame, in `Double`.
/// Separable: columns first (rows of output), then along each row; no per-pixel allocation.
public func downscaleAntiAliased(_ image: Raster<Float>, scale: Double = 0.25) -> Raster<Double> {
    let rows = ResamplingAxis(inputCount: image.height, scale: scale)
    let columns = ResamplingAxis(inputCount: image.width, scale: scale)
    let width = image.width
    var out = [Double](repeating: 0, count: rows.outputCount * columns.outputCount)
    var line = [Double](repeating: 0, count: width)
    image.pixels.withUnsafeBufferPointer { pixels in
        line.withUnsafeMutableBufferPointer { line in
            out.withUnsafeMutableBufferPointer { out in
                for o in 0..<rows.outputCount {
                    for c in 0..<width { line[c] = 0 }
                    let start = rows.starts[o]
                    for (k, w) in rows.weights[o].enumerated() {
                        let base = (start + k) * width
                        for c in 0..<width { line[c] += w * Double(pixels[base + c]) }
                    }
                    let outBase = o * columns.outputCount
                    for p in 0..<columns.outputCount {
                        let s = columns.starts[p]
                        var acc = 0.0
                        columns.weights[p].withUnsafeBufferPointer { w in
                            for k in 0..<w.count { acc += w[k] * line[s + k] }
                        }
                        out[outBase + p] = acc
                    }
                }
            }
        }
    }
    return Raster(width: columns.outputCount, height: rows.outputCount, pixels: out)
}

/// A fitted flat-field background: a 2x2 Bezier surface (tensor product of degree-2 Bernstein
/// polynomials, u down the rows and v across the columns, both on [0, 1]).
public struct FlatFieldModel: Sendable, Equatable, Codable {
    public let width: Int
    public let height: Int
    /// Nine coefficients, index `3 i + j` for the basis image `B_i(u_row) B_j(v_column)`
    /// (the NumPy reference's order).
    public let coefficients: [Double]

    public init(width: Int, height: Int, coefficients: [Double]) {
        precondition(coefficients.count == 9)
        self.width = width; self.height = height; self.coefficients = coefficients
    }

    /// Per row r: the three coefficients `sum_i a_ij B_i(u_r)` of the column polynomials.
    func rowCoefficients() -> [SIMD3<Double>] {
        let bu = bernsteinBasis(count: height)
        return (0..<height).map { r in
            var s = SIMD3<Double>(repeating: 0)
            for j in 0..<3 {
                s[j] = coefficients[j] * bu[0][r] + coefficients[3 + j] * bu[1][r] + coefficients[6 + j] * bu[2][r]
            }
            return s
        }
    }

    /// The background at full resolution, in `Double`.
    public func background() -> Raster<Double> {
        let rowCoefficients = rowCoefficients()
        let bv = bernsteinBasis(count: width)
        var out = [Double](repeating: 0, count: width * height)
        for r in 0..<height {
            let a = rowCoefficients[r]
            for c in 0..<width { out[r * width + c] = a[0] * bv[0][c] + a[1] * bv[1][c] + a[2] * bv[2][c] }
        }
        return Raster(width: width, height: height, pixels: out)
    }
}

/// Fits the study's flat-field background to a frame (the study's preprocessing, step 2).
///
/// The frame and the nine basis images are downscaled by `scale` exactly as scikit-image's
/// `rescale(x, scale, order=1, anti_aliasing=True)` does (see `ResamplingAxis`; the basis
/// images' downscale is the outer product of the per-axis downscales, which is the same linear
/// map). Then iteratively reweighted least squares: iteration 1 is ordinary least squares; each
/// further iteration weights rows and targets by `w = exp(-1.5 r^2 / mean(r^2))` of the previous
/// fit's residuals r (squared-loss weight w^2). Solved by the normal equations (9 x 9, `Double`,
/// accumulated separably per row), which agrees with NumPy's `lstsq` to far better than the
/// 1e-5 relative the parity test requires on the background.
/// Complexity: O(n) for the downscale, O(n * scale^2) per iteration.
public func fitFlatField(_ image: Raster<Float>, scale: Double = 0.25, iterations: Int = 2) -> FlatFieldModel {
    precondition(iterations >= 1, "at least one least-squares iteration")
    let small = downscaleAntiAliased(image, scale: scale)
    let rowAxis = ResamplingAxis(inputCount: image.height, scale: scale)
    let columnAxis = ResamplingAxis(inputCount: image.width, scale: scale)
    let u = bernsteinBasis(count: image.height).map(rowAxis.apply)
    let v = bernsteinBasis(count: image.width).map(columnAxis.apply)
    let m = small.height, n = small.width
    // column factors, flat: V_j at [j * n + c], products V_j V_l (j <= l) at [p * n + c]
    let pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    let pairIndex: [[Int]] = (0..<3).map { j in (0..<3).map { l in pairs.firstIndex { $0 == (min(j, l), max(j, l)) }! } }
    let vFlat = v[0] + v[1] + v[2]
    let vvFlat = pairs.flatMap { p in (0..<n).map { v[p.0][$0] * v[p.1][$0] } }
    var squaredWeights: [Double]? = nil
    var coefficients = [Double](repeating: 0, count: 9)
    var residualSquares = [Double](repeating: 0, count: m * n)
    for iteration in 0..<iterations {
        var a = [Double](repeating: 0, count: 81)
        var b = [Double](repeating: 0, count: 9)
        var s = [Double](repeating: 0, count: 6)
        small.pixels.withUnsafeBufferPointer { y in
            vFlat.withUnsafeBufferPointer { vb in
                vvFlat.withUnsafeBufferPointer { vv in
                    for r in 0..<m {
                        let base = r * n
                        var t0 = 0.0, t1 = 0.0, t2 = 0.0
                        if let w2 = squaredWeights {
                            w2.withUnsafeBufferPointer { w2 in
                                var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, s5 = 0.0
                                for c in 0..<n {
                                    let w = w2[base + c]
                                    s0 += w * vv[c]; s1 += w * vv[n + c]; s2 += w * vv[2 * n + c]
                                    s3 += w * vv[3 * n + c]; s4 += w * vv[4 * n + c]; s5 += w * vv[5 * n + c]
                                    let wy = w * y[base + c]
                                    t0 += wy * vb[c]; t1 += wy * vb[n + c]; t2 += wy * vb[2 * n + c]
                                }
                                s[0] = s0; s[1] = s1; s[2] = s2; s[3] = s3; s[4] = s4; s[5] = s5
                            }
                        } else {
                            if r == 0 { for p in 0..<6 { s[p] = vv[(p * n)..<((p + 1) * n)].reduce(0, +) } }
                            for c in 0..<n {
                                let yy = y[base + c]
                                t0 += yy * vb[c]; t1 += yy * vb[n + c]; t2 += yy * vb[2 * n + c]
                            }
                        }
                        let t = [t0, t1, t2]
                        for i in 0..<3 {
                            for j in 0..<3 {
                                let row = 3 * i + j
                                b[row] += u[i][r] * t[j]
                                for k in 0..<3 {
                                    let uu = u[i][r] * u[k][r]
                                    for l in 0..<3 { a[row * 9 + 3 * k + l] += uu * s[pairIndex[j][l]] }
                                }
                            }
                        }
                    }
                }
            }
        }
        coefficients = solveLinearSystem(a, b, size: 9)
        if iteration == iterations - 1 { break }
        // residuals of this fit -> squared weights of the next: w^2 = exp(-1.5 r^2 / mean(r^2))^2
        var total = 0.0
        small.pixels.withUnsafeBufferPointer { y in
            vFlat.withUnsafeBufferPointer { vb in
                residualSquares.withUnsafeMutableBufferPointer { e2 in
                    for r in 0..<m {
                        var rc = SIMD3<Double>(repeating: 0)
                        for j in 0..<3 {
                            rc[j] = coefficients[j] * u[0][r] + coefficients[3 + j] * u[1][r] + coefficients[6 + j] * u[2][r]
                        }
                        let c0 = rc[0], c1 = rc[1], c2 = rc[2], base = r * n
                        var rowTotal = 0.0
                        for c in 0..<n {
                            let e = y[base + c] - (c0 * vb[c] + c1 * vb[n + c] + c2 * vb[2 * n + c])
                            e2[base + c] = e * e
                            rowTotal += e * e
                        }
                        total += rowTotal
                    }
                }
            }
        }
        let meanSquare = total / Double(m * n)
        squaredWeights = residualSquares.map { meanSquare > 0 ? exp(-3 * $0 / meanSquare) : 1 }
    }
    return FlatFieldModel(width: image.width, height: image.height, coefficients: coefficients)
}

/// Solves `a x = b` (row-major `size` x `size`) by Gaussian elimination with partial pivoting.
func solveLinearSystem(_ matrix: [Double], _ rhs: [Double], size: Int) -> [Double] {
    var a = matrix, b = rhs
    for col in 0..<size {
        var pivot = col
        for r in (col + 1)..<size where abs(a[r * size + col]) > abs(a[pivot * size + col]) { pivot = r }
        if pivot != col {
            for k in 0..<size { a.swapAt(col * size + k, pivot * size + k) }
            b.swapAt(col, pivot)
        }
        let p = a[col * size + col]
        guard p != 0 else { continue }
        for r in (col + 1)..<size {
            let f = a[r * size + col] / p
            if f == 0 { continue }
            for k in col..<size { a[r * size + k] -= f * a[col * size + k] }
            b[r] -= f * b[col]
        }
    }
    var x = [Double](repeating: 0, count: size)
    for r in stride(from: size - 1, through: 0, by: -1) {
        var s = b[r]
        for k in (r + 1)..<size { s -= a[r * size + k] * x[k] }
        let p = a[r * size + r]
        x[r] = p != 0 ? s / p : 0
    }
    return x
}
