import Foundation
import Micrograph

/// Band-limited random texture standing in for the phase-contrast speckle of an amorphous film.
///
/// White noise (uniform, one derived generator per row, so rows can be filled in any order) is
/// blurred by two Gaussians, `fine` and `coarse` (widths in pixels), and the coarse blur is
/// subtracted: a difference of Gaussians that keeps spatial periods between roughly
/// 2 pi fine and 2 pi coarse. The result is shifted and scaled to mean exactly 0 and standard
/// deviation exactly 1 over the raster (up to Float rounding), so multiplying it by a contrast
/// never changes the frame's mean dose.
///
/// Gaussians narrower than 3 pixels are applied as exact sampled kernels; wider ones as three
/// passes of a box filter (O(1) per pixel whatever the width; the shape is a close, smooth
/// approximation of a Gaussian). Borders are reflected.
public func amorphousTexture(width: Int, height: Int, fine: Double, coarse: Double,
                             using random: SplitMix64) -> Raster<Float> {
    let count = width * height
    var noise = [Float](repeating: 0, count: count)
    noise.withUnsafeMutableBufferPointer { buffer in
        let base = buffer.baseAddress!
        concurrentRows(height) { row in
            var rowRandom = random.derived(UInt64(row))
            let start = base + row * width
            for column in 0..<width {
                // 24 random bits give a uniform on [-0.5, 0.5): variance 1/12.
                start[column] = Float(Int32(truncatingIfNeeded: rowRandom.next() >> 40)) * 0x1p-24 - 0.5
            }
        }
    }
    var fineBlur = noise
    gaussianBlur(&fineBlur, width: width, height: height, sigma: fine)
    var coarseBlur = noise
    gaussianBlur(&coarseBlur, width: width, height: height, sigma: coarse)
    var texture = [Float](repeating: 0, count: count)
    var sum = 0.0
    for index in 0..<count {
        let value = fineBlur[index] - coarseBlur[index]
        texture[index] = value
        sum += Double(value)
    }
    let mean = sum / Double(max(count, 1))
    var squares = 0.0
    for value in texture {
        let centred = Double(value) - mean
        squares += centred * centred
    }
    let deviation = (squares / Double(max(count, 1))).squareRoot()
    let scale = deviation > 0 ? 1 / deviation : 0
    for index in 0..<count {
        texture[index] = Float((Double(texture[index]) - mean) * scale)
    }
    return Raster(width: width, height: height, pixels: texture)
}

/// Separable Gaussian blur of standard deviation `sigma` pixels, in place; see `amorphousTexture`.
func gaussianBlur(_ pixels: inout [Float], width: Int, height: Int, sigma: Double) {
    guard sigma > 0.3, width > 0, height > 0 else { return }
    if sigma < 3 {
        let radius = Int((3 * sigma).rounded(.up))
        var kernel = (-radius...radius).map { Float(exp(-Double($0 * $0) / (2 * sigma * sigma))) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        convolveRows(&pixels, width: width, height: height, kernel: kernel)
        convolveColumns(&pixels, width: width, height: height, kernel: kernel)
    } else {
        // One box of width 2r + 1 has variance r (r + 1) / 3, three in a row r (r + 1): pick r so that is sigma^2.
        let radius = max(1, Int((((1 + 4 * sigma * sigma).squareRoot() - 1) / 2).rounded()))
        for _ in 0..<3 { boxRows(&pixels, width: width, height: height, radius: radius) }
        for _ in 0..<3 { boxColumns(&pixels, width: width, height: height, radius: radius) }
    }
}

/// Reflects an index into [0, n): ... 2 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...
@inline(__always)
func reflect(_ index: Int, _ n: Int) -> Int {
    var i = index
    let period = 2 * n
    i %= period
    if i < 0 { i += period }
    return i < n ? i : period - 1 - i
}

private func convolveRows(_ pixels: inout [Float], width: Int, height: Int, kernel: [Float]) {
    let radius = kernel.count / 2
    pixels.withUnsafeMutableBufferPointer { buffer in
        let base = buffer.baseAddress!
        kernel.withUnsafeBufferPointer { taps in
            concurrentRows(height) { row in
                let line = base + row * width
                var padded = [Float](repeating: 0, count: width + 2 * radius)
                for i in 0..<(width + 2 * radius) { padded[i] = line[reflect(i - radius, width)] }
                for column in 0..<width {
                    var acc: Float = 0
                    for t in 0..<taps.count { acc += taps[t] * padded[column + t] }
                    line[column] = acc
                }
            }
        }
    }
}

private func boxRows(_ pixels: inout [Float], width: Int, height: Int, radius: Int) {
    let span = 2 * radius + 1
    let scale = 1 / Double(span)
    pixels.withUnsafeMutableBufferPointer { buffer in
        let base = buffer.baseAddress!
        concurrentRows(height) { row in
            let line = base + row * width
            var padded = [Float](repeating: 0, count: width + 2 * radius)
            for i in 0..<(width + 2 * radius) { padded[i] = line[reflect(i - radius, width)] }
            // Running sum in double: exact enough that the order of additions cannot drift.
            var sum = 0.0
            for t in 0..<span { sum += Double(padded[t]) }
            line[0] = Float(sum * scale)
            if width > 1 {
                for column in 1..<width {
                    sum += Double(padded[column + span - 1]) - Double(padded[column - 1])
                    line[column] = Float(sum * scale)
                }
            }
        }
    }
}

/// The column-direction twin of `convolveRows`: whole rows are combined at a time (cache- and
/// vector-friendly, no transpose); each output row depends only on input rows, so the bytes do not
/// depend on the schedule.
private func convolveColumns(_ pixels: inout [Float], width: Int, height: Int, kernel: [Float]) {
    let radius = kernel.count / 2
    let source = pixels
    source.withUnsafeBufferPointer { input in
        pixels.withUnsafeMutableBufferPointer { output in
            let inBase = input.baseAddress!, outBase = output.baseAddress!
            concurrentRows(height) { row in
                let line = outBase + row * width
                for column in 0..<width { line[column] = 0 }
                for t in 0..<kernel.count {
                    let tap = kernel[t]
                    let sourceLine = inBase + reflect(row + t - radius, height) * width
                    for column in 0..<width { line[column] += tap * sourceLine[column] }
                }
            }
        }
    }
}

/// Box filter down the columns with a running sum per column (in `Double`), carried from row to
/// row; the rows are split into bands of 32 (a fixed height, never the core count), each
/// starting its sums afresh, so the bytes do not depend on the machine or the schedule.
private func boxColumns(_ pixels: inout [Float], width: Int, height: Int, radius: Int) {
    let span = 2 * radius + 1
    let scale = 1 / Double(span)
    let source = pixels
    let bandHeight = 32
    let bands = (height + bandHeight - 1) / bandHeight
    source.withUnsafeBufferPointer { input in
        pixels.withUnsafeMutableBufferPointer { output in
            let inBase = input.baseAddress!, outBase = output.baseAddress!
            concurrentRows(bands) { band in
                let start = band * bandHeight, end = min(height, start + bandHeight)
                guard start < end else { return }
                var sums = [Double](repeating: 0, count: width)
                for t in (start - radius)...(start + radius) {
                    let sourceLine = inBase + reflect(t, height) * width
                    for column in 0..<width { sums[column] += Double(sourceLine[column]) }
                }
                for row in start..<end {
                    if row > start {
                        let adding = inBase + reflect(row + radius, height) * width
                        let removing = inBase + reflect(row - radius - 1, height) * width
                        for column in 0..<width { sums[column] += Double(adding[column]) - Double(removing[column]) }
                    }
                    let line = outBase + row * width
                    for column in 0..<width { line[column] = Float(sums[column] * scale) }
                }
            }
        }
    }
}

/// Runs `body(row)` for every row in 0..<rows, spread over the machine's cores in contiguous
/// chunks. Each row's result must depend only on its index, so the output is the same bytes
/// whatever the schedule.
func concurrentRows(_ rows: Int, _ body: (Int) -> Void) {
    let chunks = min(rows, max(1, ProcessInfo.processInfo.activeProcessorCount * 4))
    guard chunks > 1 else {
        for row in 0..<rows { body(row) }
        return
    }
    withoutActuallyEscaping(body) { body in
        concurrentPerform(iterations: chunks) { chunk in
            let start = rows * chunk / chunks, end = rows * (chunk + 1) / chunks
            for row in start..<end { body(row) }
        }
    }
}
