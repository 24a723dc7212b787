import Micrograph

/// Every per-frame preprocessing parameter (the study's preprocessing, steps 1-3); defaults are the study's.
public struct FramePreprocessing: Sendable, Equatable, Codable, Hashable {
    /// X-ray detection threshold above the median, in raw counts; nil skips x-ray removal.
    public var xrayThreshold: Double?
    public var xrayMaxPasses: Int
    public var flatField: Bool
    /// Downscale factor of the flat-field fit.
    public var flatFieldScale: Double
    /// Least-squares iterations of the flat-field fit (1 = ordinary least squares).
    public var flatFieldIterations: Int
    public var rescaling: Rescaling

    public init(xrayThreshold: Double? = 1500, xrayMaxPasses: Int = 2, flatField: Bool = true,
                flatFieldScale: Double = 0.25, flatFieldIterations: Int = 2, rescaling: Rescaling = .standardize) {
        self.xrayThreshold = xrayThreshold
        self.xrayMaxPasses = xrayMaxPasses
        self.flatField = flatField
        self.flatFieldScale = flatFieldScale
        self.flatFieldIterations = flatFieldIterations
        self.rescaling = rescaling
    }

    public static let study = FramePreprocessing()
}

/// What preprocessing found on one frame.
public struct FramePreprocessingReport: Sendable, Equatable, Codable {
    public var xray: XRayRemovalReport?
    public var flatField: FlatFieldModel?
    public var rescaling: RescalingMap
}

/// A raw frame through x-ray removal, flat-field correction and rescaling, in the study's order.
///
/// Input: raw counts as `Float` (consumed: x-ray removal works in place on it). Output: the
/// rescaled frame as `Float` (what `images.npy` stores). Internally the flat-field quotient
/// `x / background` and its statistics are computed in `Double` row by row and rounded to
/// `Float` once, so the output equals the NumPy reference's float64 result rounded to float32
/// (differences within 1e-6 of the rescaled values). Memory: the frame plus O(width) scratch
/// (plus one `Double` frame for `.histogram`).
public func preprocessFrame(_ raw: consuming Raster<Float>, _ options: FramePreprocessing = .study)
    -> (image: Raster<Float>, report: FramePreprocessingReport) {
    var image = raw
    var xray: XRayRemovalReport? = nil
    if let threshold = options.xrayThreshold {
        xray = removeXRays(&image, threshold: threshold, maxPasses: options.xrayMaxPasses)
    }
    let model = options.flatField
        ? fitFlatField(image, scale: options.flatFieldScale, iterations: options.flatFieldIterations) : nil
    let width = image.width, height = image.height
    let rowCoefficients = model?.rowCoefficients()
    let bv = model != nil ? bernsteinBasis(count: width) : []
    let map: RescalingMap = image.pixels.withUnsafeBufferPointer { pixels in
        let fill = quotientRowFiller(pixels: pixels, width: width, rowCoefficients: rowCoefficients, bv: bv)
        return resolveRescaling(options.rescaling, height: height, width: width, fillRow: fill)
    }
    var line = [Double](repeating: 0, count: width)
    image.pixels.withUnsafeMutableBufferPointer { pixels in
        let fill = quotientRowFiller(pixels: UnsafeBufferPointer(pixels), width: width,
                                     rowCoefficients: rowCoefficients, bv: bv)
        line.withUnsafeMutableBufferPointer { line in
            for r in 0..<height {
                fill(r, line)
                let base = r * width
                if map.clipsToUnitInterval {
                    for c in 0..<width { pixels[base + c] = Float(min(max((line[c] - map.offset) / map.divisor, 0), 1)) }
                } else {
                    let offset = map.offset, factor = 1 / map.divisor
                    for c in 0..<width { pixels[base + c] = Float((line[c] - offset) * factor) }
                }
            }
        }
    }
    return (image, FramePreprocessingReport(xray: xray, flatField: model, rescaling: map))
}

/// Fills a row with `x / background` (or `x` without flat-field) in `Double`.
private func quotientRowFiller(pixels: UnsafeBufferPointer<Float>, width: Int, rowCoefficients: [SIMD3<Double>]?,
                               bv: [[Double]]) -> (Int, UnsafeMutableBufferPointer<Double>) -> Void {
    guard let rowCoefficients else {
        return { r, line in for c in 0..<width { line[c] = Double(pixels[r * width + c]) } }
    }
    let b0 = bv[0], b1 = bv[1], b2 = bv[2]
    return { r, line in
        let a = rowCoefficients[r]
        let base = r * width
        b0.withUnsafeBufferPointer { b0 in
            b1.withUnsafeBufferPointer { b1 in
                b2.withUnsafeBufferPointer { b2 in
                    for c in 0..<width {
                        line[c] = Double(pixels[base + c]) / (a[0] * b0[c] + a[1] * b1[c] + a[2] * b2[c])
                    }
                }
            }
        }
    }
}

/// The flat-field-corrected frame `x / background` in `Double` (the step on its own, for tests
/// and for callers that rescale differently).
public func flatFieldCorrected(_ image: Raster<Float>, _ model: FlatFieldModel) -> Raster<Double> {
    precondition(image.width == model.width && image.height == model.height)
    var out = [Double](repeating: 0, count: image.count)
    image.pixels.withUnsafeBufferPointer { pixels in
        let filler = quotientRowFiller(pixels: pixels, width: image.width, rowCoefficients: model.rowCoefficients(),
                                       bv: bernsteinBasis(count: image.width))
        out.withUnsafeMutableBufferPointer { out in
            for r in 0..<image.height {
                filler(r, UnsafeMutableBufferPointer(rebasing: out[(r * image.width)..<((r + 1) * image.width)]))
            }
        }
    }
    return Raster(width: image.width, height: image.height, pixels: out)
}
