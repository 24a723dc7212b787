import Foundation
import Micrograph

/// The length unit particle sizes are given in: nanometres when the pixel size is known, else
/// pixels. A size in pixels is never labelled nm.
public enum LengthScale: Sendable, Equatable, Codable {
    case nanometresPerPixel(Double)
    case pixels

    /// `nm` or `px`.
    public var unit: String {
        switch self {
        case .nanometresPerPixel: return "nm"
        case .pixels: return "px"
        }
    }

    /// Length of one pixel in `unit`.
    public var lengthPerPixel: Double {
        switch self {
        case .nanometresPerPixel(let scale): return scale
        case .pixels: return 1
        }
    }

    /// The scale from a pixel size in nm when there is one (positive and finite), else pixels.
    public init(nanometresPerPixel scale: Double?) {
        if let scale, scale > 0, scale.isFinite { self = .nanometresPerPixel(scale) } else { self = .pixels }
    }
}

/// One connected particle of a mask (8-connectivity). Lengths are in pixels; multiply by the
/// frame's `LengthScale` for nm (see `ParticleTable`).
public struct Particle: Sendable, Equatable, Codable {
    /// 1-based, in raster order of each particle's first pixel (top row first, then left).
    public var id: Int
    /// Pixels.
    public var area: Int
    /// Pixel-centre coordinates (row 0's centre is 0.5 from the top edge: here 0-based indices).
    public var centroidRow: Double
    public var centroidColumn: Double
    /// Diameter of the disc of the same area: sqrt(4 area / pi), pixels.
    public var equivalentDiameter: Double
    /// Largest caliper width of the particle's outline (the convex hull of its pixels' corners), pixels.
    public var feretMax: Double
    /// Smallest caliper width of the same outline, pixels.
    public var feretMin: Double
    /// Of the ellipse with the same second central moments: sqrt(1 - lambda2 / lambda1), 0 for a disc.
    public var eccentricity: Double
    /// Whether a pixel lies on the frame's outermost row or column (the particle may be cut).
    public var touchesBorder: Bool
}

/// The particles of a mask and the raster that says which pixel belongs to which.
public struct ParticleAnalysis: Sendable {
    /// 0 = background, k = the particle with id k.
    public var labels: Raster<Int32>
    public var particles: [Particle]
}

/// Finds the connected particles of a 0/1 mask (any non-zero pixel is particle; 8-connectivity:
/// pixels touching at a corner belong to one particle) and measures each one.
/// Complexity: linear in the pixel count plus, per particle, quadratic in its hull's vertices.
public func findParticles(in mask: Raster<UInt8>) -> ParticleAnalysis {
    let width = mask.width, height = mask.height
    var labels = [Int32](repeating: 0, count: mask.count)
    var next: Int32 = 0
    var stack = [Int]()
    // Flood fill from each unlabelled particle pixel, in raster order, so ids follow first pixels.
    mask.pixels.withUnsafeBufferPointer { source in
        for start in 0..<source.count where source[start] != 0 && labels[start] == 0 {
            next += 1
            labels[start] = next
            stack.append(start)
            while let index = stack.popLast() {
                let row = index / width, column = index % width
                for dr in -1...1 {
                    let r = row + dr
                    guard r >= 0 && r < height else { continue }
                    for dc in -1...1 {
                        let c = column + dc
                        guard c >= 0 && c < width else { continue }
                        let neighbour = r * width + c
                        if source[neighbour] != 0 && labels[neighbour] == 0 {
                            labels[neighbour] = next
                            stack.append(neighbour)
                        }
                    }
                }
            }
        }
    }
    let count = Int(next)
    var area = [Int](repeating: 0, count: count)
    var sumRow = [Double](repeating: 0, count: count), sumColumn = [Double](repeating: 0, count: count)
    var border = [Bool](repeating: false, count: count)
    // Per particle and row, the leftmost and rightmost pixel: the hull of the pixel corners
    // only needs those.
    var extents = [[Int: (Int, Int)]](repeating: [:], count: count)
    for row in 0..<height {
        for column in 0..<width {
            let label = Int(labels[row * width + column])
            guard label > 0 else { continue }
            let k = label - 1
            let r = Double(row), c = Double(column)
            area[k] += 1
            sumRow[k] += r; sumColumn[k] += c
            if row == 0 || column == 0 || row == height - 1 || column == width - 1 { border[k] = true }
            if let (low, high) = extents[k][row] {
                extents[k][row] = (min(low, column), max(high, column))
            } else {
                extents[k][row] = (column, column)
            }
        }
    }
    // Second moments about the centroids, in a second pass: sums of squares minus squared means
    // lose the small axis of a large particle to cancellation.
    let meanRows = (0..<count).map { sumRow[$0] / Double(area[$0]) }
    let meanColumns = (0..<count).map { sumColumn[$0] / Double(area[$0]) }
    var moments = [(rr: Double, cc: Double, rc: Double)](repeating: (0, 0, 0), count: count)
    for row in 0..<height {
        for column in 0..<width {
            let label = Int(labels[row * width + column])
            guard label > 0 else { continue }
            let dr = Double(row) - meanRows[label - 1], dc = Double(column) - meanColumns[label - 1]
            moments[label - 1].rr += dr * dr
            moments[label - 1].cc += dc * dc
            moments[label - 1].rc += dr * dc
        }
    }
    var particles = [Particle]()
    particles.reserveCapacity(count)
    for k in 0..<count {
        let n = Double(area[k])
        let meanRow = meanRows[k], meanColumn = meanColumns[k]
        let varianceRow = moments[k].rr / n, varianceColumn = moments[k].cc / n, covariance = moments[k].rc / n
        let half = (varianceRow + varianceColumn) / 2
        let root = ((varianceRow - varianceColumn) * (varianceRow - varianceColumn) / 4 + covariance * covariance).squareRoot()
        let major = half + root, minor = max(0, half - root)
        let eccentricity = major > 1e-12 ? (1 - minor / major).squareRoot() : 0
        var corners = [(Double, Double)]()
        for (row, (low, high)) in extents[k] {
            let top = Double(row), bottom = Double(row + 1)
            corners += [(top, Double(low)), (bottom, Double(low)), (top, Double(high + 1)), (bottom, Double(high + 1))]
        }
        let (feretMax, feretMin) = caliperDiameters(convexHull(corners))
        particles.append(Particle(id: k + 1, area: area[k], centroidRow: meanRow, centroidColumn: meanColumn,
                                  equivalentDiameter: (4 * n / Double.pi).squareRoot(),
                                  feretMax: feretMax, feretMin: feretMin, eccentricity: eccentricity,
                                  touchesBorder: border[k]))
    }
    return ParticleAnalysis(labels: Raster(width: width, height: height, pixels: labels), particles: particles)
}

/// Andrew's monotone chain: the hull's vertices counter-clockwise, collinear points dropped.
func convexHull(_ points: [(Double, Double)]) -> [(Double, Double)] {
    let sorted = points.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
    guard sorted.count > 2 else { return sorted }
    func cross(_ o: (Double, Double), _ a: (Double, Double), _ b: (Double, Double)) -> Double {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    }
    var lower = [(Double, Double)](), upper = [(Double, Double)]()
    for point in sorted {
        while lower.count >= 2 && cross(lower[lower.count - 2], lower[lower.count - 1], point) <= 0 { lower.removeLast() }
        lower.append(point)
    }
    for point in sorted.reversed() {
        while upper.count >= 2 && cross(upper[upper.count - 2], upper[upper.count - 1], point) <= 0 { upper.removeLast() }
        upper.append(point)
    }
    return Array(lower.dropLast() + upper.dropLast())
}

/// The largest distance between two hull vertices, and the smallest width of the hull over the
/// directions of its edges (where the minimum caliper width is always found).
func caliperDiameters(_ hull: [(Double, Double)]) -> (maximum: Double, minimum: Double) {
    var maximum = 0.0
    for i in 0..<hull.count {
        for j in (i + 1)..<hull.count {
            let dr = hull[i].0 - hull[j].0, dc = hull[i].1 - hull[j].1
            maximum = max(maximum, (dr * dr + dc * dc).squareRoot())
        }
    }
    guard hull.count > 2 else { return (maximum, maximum) }
    var minimum = Double.infinity
    for i in 0..<hull.count {
        let a = hull[i], b = hull[(i + 1) % hull.count]
        let length = ((b.0 - a.0) * (b.0 - a.0) + (b.1 - a.1) * (b.1 - a.1)).squareRoot()
        guard length > 0 else { continue }
        var width = 0.0
        for point in hull {
            width = max(width, abs((b.0 - a.0) * (point.1 - a.1) - (b.1 - a.1) * (point.0 - a.0)) / length)
        }
        minimum = min(minimum, width)
    }
    return (maximum, minimum)
}

/// A predicted particle matched to a true one.
public struct ParticleMatch: Sendable, Equatable, Codable {
    public var predicted: Int
    public var truth: Int
    public var iou: Double
}

/// How well predicted particles reproduce a label's particles, and how their sizes are biased.
/// Diameters are equivalent diameters in `unit` (nm or px).
public struct ParticleComparison: Sendable, Equatable, Codable {
    public var unit: String
    /// True particles matched by a predicted one (IoU >= the threshold, one to one).
    public var detected: Int
    /// True particles left unmatched.
    public var missed: Int
    /// Predicted particles left unmatched.
    public var spurious: Int
    /// 2 detected / (2 detected + missed + spurious); 1 when neither has a particle.
    public var f1: Double
    /// Mean equivalent diameter of the predicted and of the true particles (nil when there are none).
    public var meanPredictedDiameter: Double?
    public var meanTrueDiameter: Double?
    /// Mean predicted minus mean true diameter: positive = over-segmentation inflates sizes.
    public var meanDiameterDifference: Double?
    /// Mean over matched pairs of predicted minus true diameter.
    public var matchedDiameterDifference: Double?
    /// Two-sample Kolmogorov-Smirnov statistic of the two diameter distributions (sup |F_p - F_t|).
    public var kolmogorovSmirnov: Double?
    public var matches: [ParticleMatch]
}

/// Matches predicted particles to true ones by intersection over union (>= `minimumIoU`, one to
/// one, highest IoU first; with a threshold of 0.5 or more a particle can overlap that much with
/// at most one other except in ties) and measures the size bias.
/// - Precondition: both analyses come from masks of the same size.
public func compareParticles(predicted: ParticleAnalysis, truth: ParticleAnalysis, scale: LengthScale,
                             minimumIoU: Double = 0.5) -> ParticleComparison {
    precondition(predicted.labels.width == truth.labels.width && predicted.labels.height == truth.labels.height,
                 "particle comparison needs masks of the same size")
    var intersections = [Int: Int]()
    let truthCount = truth.particles.count
    for index in 0..<predicted.labels.count {
        let p = Int(predicted.labels.pixels[index]), t = Int(truth.labels.pixels[index])
        if p > 0 && t > 0 { intersections[p * (truthCount + 1) + t, default: 0] += 1 }
    }
    var candidates = [ParticleMatch]()
    for (key, overlap) in intersections {
        let p = key / (truthCount + 1), t = key % (truthCount + 1)
        let union = predicted.particles[p - 1].area + truth.particles[t - 1].area - overlap
        let iou = Double(overlap) / Double(union)
        if iou >= minimumIoU { candidates.append(ParticleMatch(predicted: p, truth: t, iou: iou)) }
    }
    candidates.sort { ($0.iou, -$0.predicted, -$0.truth) > ($1.iou, -$1.predicted, -$1.truth) }
    var usedPredicted = Set<Int>(), usedTruth = Set<Int>()
    var matches = [ParticleMatch]()
    for candidate in candidates where !usedPredicted.contains(candidate.predicted) && !usedTruth.contains(candidate.truth) {
        usedPredicted.insert(candidate.predicted)
        usedTruth.insert(candidate.truth)
        matches.append(candidate)
    }
    matches.sort { $0.truth < $1.truth }
    let length = scale.lengthPerPixel
    let predictedDiameters = predicted.particles.map { $0.equivalentDiameter * length }
    let trueDiameters = truth.particles.map { $0.equivalentDiameter * length }
    let detected = matches.count
    let missed = truthCount - detected, spurious = predicted.particles.count - detected
    let denominator = 2 * detected + missed + spurious
    let meanPredicted = mean(predictedDiameters), meanTrue = mean(trueDiameters)
    let matched = mean(matches.map { predictedDiameters[$0.predicted - 1] - trueDiameters[$0.truth - 1] })
    return ParticleComparison(
        unit: scale.unit, detected: detected, missed: missed, spurious: spurious,
        f1: denominator == 0 ? 1 : Double(2 * detected) / Double(denominator),
        meanPredictedDiameter: meanPredicted, meanTrueDiameter: meanTrue,
        meanDiameterDifference: meanPredicted.flatMap { p in meanTrue.map { p - $0 } },
        matchedDiameterDifference: matched,
        kolmogorovSmirnov: kolmogorovSmirnovStatistic(predictedDiameters, trueDiameters),
        matches: matches)
}

private func mean(_ values: [Double]) -> Double? {
    values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
}

/// The two-sample Kolmogorov-Smirnov statistic: the largest distance between the two empirical
/// distribution functions (as scipy.stats.ks_2samp's statistic). Nil when a sample is empty.
public func kolmogorovSmirnovStatistic(_ a: [Double], _ b: [Double]) -> Double? {
    guard !a.isEmpty, !b.isEmpty else { return nil }
    let x = a.sorted(), y = b.sorted()
    var i = 0, j = 0, largest = 0.0
    while i < x.count && j < y.count {
        let value = min(x[i], y[j])
        while i < x.count && x[i] <= value { i += 1 }
        while j < y.count && y[j] <= value { j += 1 }
        largest = max(largest, abs(Double(i) / Double(x.count) - Double(j) / Double(y.count)))
    }
    return largest
}

/// Per-frame particle outputs: the CSV table and the size histogram, with sizes in the scale's unit.
public enum ParticleTable {
    /// One row per particle; length columns carry the unit in their names (`_nm` or `_px`).
    public static func csv(_ particles: [Particle], scale: LengthScale) -> String {
        let u = scale.unit, length = scale.lengthPerPixel
        var text = "id,area_px,area_\(u)2,equivalent_diameter_\(u),feret_max_\(u),feret_min_\(u),"
            + "centroid_row_px,centroid_column_px,eccentricity,touches_border\n"
        for p in particles {
            let fields: [String] = [
                "\(p.id)", "\(p.area)", number(Double(p.area) * length * length), number(p.equivalentDiameter * length),
                number(p.feretMax * length), number(p.feretMin * length), number(p.centroidRow), number(p.centroidColumn),
                number(p.eccentricity), p.touchesBorder ? "true" : "false",
            ]
            text += fields.joined(separator: ",") + "\n"
        }
        return text
    }

    private static func number(_ value: Double) -> String { String(format: "%.6g", value) }

    /// An SVG histogram of equivalent diameters (in `unit`), with a second outlined series
    /// (e.g. the label's particles) when given. Bins: `binCount` equal bins from 0 to the largest diameter.
    public static func histogramSVG(diameters: [Double], unit: String, title: String,
                                    reference: [Double]? = nil, referenceName: String = "label",
                                    binCount: Int = 20) -> String {
        let all = diameters + (reference ?? [])
        let top = max(all.max() ?? 1, 1e-9) * 1.0001
        let binWidth = top / Double(binCount)
        func counts(_ values: [Double]) -> [Int] {
            var bins = [Int](repeating: 0, count: binCount)
            for v in values { bins[min(binCount - 1, max(0, Int(v / binWidth)))] += 1 }
            return bins
        }
        let main = counts(diameters), second = reference.map(counts)
        let highest = max(1, (main + (second ?? [])).max() ?? 1)
        let plotWidth = 480.0, plotHeight = 240.0, left = 50.0, topMargin = 30.0
        let barWidth = plotWidth / Double(binCount)
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(left + plotWidth + 20))" height="\(Int(topMargin + plotHeight + 50))" font-family="sans-serif" font-size="11">
        <text x="\(Int(left))" y="18" font-size="13">\(escapeXML(title))</text>

        """
        for (i, count) in main.enumerated() where count > 0 {
            let h = plotHeight * Double(count) / Double(highest)
            svg += String(format: "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#3b75af\"/>\n",
                          left + Double(i) * barWidth, topMargin + plotHeight - h, barWidth - 1, h)
        }
        if let second {
            for (i, count) in second.enumerated() where count > 0 {
                let h = plotHeight * Double(count) / Double(highest)
                svg += String(format: "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n",
                              left + Double(i) * barWidth, topMargin + plotHeight - h, barWidth - 1, h)
            }
            svg += "<text x=\"\(Int(left + plotWidth - 150))\" y=\"18\" fill=\"#d62728\">outline: \(escapeXML(referenceName))</text>\n"
        }
        let axisY = topMargin + plotHeight
        svg += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", left, axisY, left + plotWidth, axisY)
        svg += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", left, topMargin, left, axisY)
        for tick in 0...4 {
            let value = top * Double(tick) / 4
            svg += String(format: "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.3g</text>\n",
                          left + plotWidth * Double(tick) / 4, axisY + 15, value)
        }
        svg += "<text x=\"\(Int(left - 6))\" y=\"\(Int(topMargin + 10))\" text-anchor=\"end\">\(highest)</text>\n"
        svg += "<text x=\"\(Int(left - 6))\" y=\"\(Int(axisY))\" text-anchor=\"end\">0</text>\n"
        svg += "<text x=\"\(Int(left + plotWidth / 2))\" y=\"\(Int(axisY + 35))\" text-anchor=\"middle\">equivalent diameter (\(unit))</text>\n"
        svg += "</svg>\n"
        return svg
    }

    private static func escapeXML(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
