import Foundation
import Micrograph

/// Particle-level scores of a model on a set of patches, pooled over the patches: a particle cut
/// by a patch's edge counts as the part inside that patch, in the prediction and in the label
/// alike. Diameters are equivalent diameters in `unit`.
public struct ParticleScores: Codable, Hashable, Sendable {
    /// `nm` or `px`.
    public var unit: String
    public var patches: Int
    public var detected: Int
    public var missed: Int
    public var spurious: Int
    /// 2 detected / (2 detected + missed + spurious) over all patches; 1 when neither has a particle.
    public var f1: Double
    /// Mean predicted minus mean true equivalent diameter over all patches (nil when either has none).
    public var meanDiameterDifference: Double?
    /// Two-sample Kolmogorov-Smirnov statistic of the pooled diameter distributions.
    public var kolmogorovSmirnov: Double?

    public init(unit: String, patches: Int, detected: Int, missed: Int, spurious: Int, f1: Double,
                meanDiameterDifference: Double?, kolmogorovSmirnov: Double?) {
        self.unit = unit; self.patches = patches
        self.detected = detected; self.missed = missed; self.spurious = spurious; self.f1 = f1
        self.meanDiameterDifference = meanDiameterDifference; self.kolmogorovSmirnov = kolmogorovSmirnov
    }
}

/// Segments each patch of `rows` once (no symmetries: particles are counted, not pixels) and
/// matches its particles to the label's (`compareParticles`, IoU >= 0.5), pooling counts and
/// diameters over the patches.
public func particleScores(network: ResidualUNet, dataset: PatchDataset, rows: [Int], scale: LengthScale,
                           batchSize: Int = 8) -> ParticleScores {
    let side = dataset.height, width = dataset.width, pixels = dataset.patchPixels
    var detected = 0, missed = 0, spurious = 0
    var predictedDiameters = [Double](), trueDiameters = [Double]()
    var start = 0
    while start < rows.count {
        let group = Array(rows[start..<min(rows.count, start + max(1, batchSize))])
        let input = Tensor([group.count, 1, side, width])
        dataset.images.withUnsafeBufferPointer { images in
            for (index, row) in group.enumerated() {
                input.plane(index, 0).update(from: images.baseAddress! + row * pixels, count: pixels)
            }
        }
        let predicted = hardPrediction(network.forward(input, training: false))
        for (index, row) in group.enumerated() {
            let mask = Raster(width: width, height: side, pixels: Array(predicted[index * pixels..<(index + 1) * pixels]))
            let label = Raster(width: width, height: side, pixels: Array(dataset.labels[row * pixels..<(row + 1) * pixels]))
            let found = findParticles(in: mask), truth = findParticles(in: label)
            let comparison = compareParticles(predicted: found, truth: truth, scale: scale)
            detected += comparison.detected
            missed += comparison.missed
            spurious += comparison.spurious
            predictedDiameters += found.particles.map { $0.equivalentDiameter * scale.lengthPerPixel }
            trueDiameters += truth.particles.map { $0.equivalentDiameter * scale.lengthPerPixel }
        }
        start += group.count
    }
    let denominator = 2 * detected + missed + spurious
    let meanPredicted = predictedDiameters.isEmpty ? nil : predictedDiameters.reduce(0, +) / Double(predictedDiameters.count)
    let meanTrue = trueDiameters.isEmpty ? nil : trueDiameters.reduce(0, +) / Double(trueDiameters.count)
    return ParticleScores(unit: scale.unit, patches: rows.count, detected: detected, missed: missed, spurious: spurious,
                          f1: denominator == 0 ? 1 : Double(2 * detected) / Double(denominator),
                          meanDiameterDifference: meanPredicted.flatMap { p in meanTrue.map { p - $0 } },
                          kolmogorovSmirnov: kolmogorovSmirnovStatistic(predictedDiameters, trueDiameters))
}
