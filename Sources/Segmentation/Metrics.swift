import Foundation

/// Per-pixel hard prediction of class 1 from 2-class logits `[n, 2, h, w]`: the study's
/// `round(softmax(logits))[1]`, i.e. 1 where p1 > 0.5 (a tie rounds to 0, as NumPy's round does).
/// For more classes, the arg-max class. Layout `[n * h * w]`.
public func hardPrediction(_ logits: Tensor) -> [UInt8] {
    let n = logits.n, k = logits.c, plane = logits.plane
    var result = [UInt8](repeating: 0, count: n * plane)
    for image in 0..<n {
        for i in 0..<plane {
            var best = 0
            var bestValue = logits.plane(image, 0)[i]
            for channel in 1..<k where logits.plane(image, channel)[i] > bestValue {
                best = channel
                bestValue = logits.plane(image, channel)[i]
            }
            result[image * plane + i] = UInt8(best)
        }
    }
    return result
}

/// The study's Dice per patch, smoothing 1: `(2 sum(p g) + 1) / (sum(g) + sum(p) + 1)` with p the
/// class-1 probability (soft) or its rounding (hard) and g the 0/1 label; `labels` is
/// `[n * h * w]` (any non-zero value counts as particle).
public func diceScores(logits: Tensor, labels: [UInt8]) -> (hard: [Double], soft: [Double]) {
    let n = logits.n, plane = logits.plane
    precondition(logits.c == 2, "Dice needs 2-class logits")
    var hard = [Double](repeating: 0, count: n), soft = [Double](repeating: 0, count: n)
    for image in 0..<n {
        let background = logits.plane(image, 0), particle = logits.plane(image, 1)
        var intersectionHard: Double = 0, predictedHard: Double = 0
        var intersectionSoft: Double = 0, predictedSoft: Double = 0, truth: Double = 0
        for i in 0..<plane {
            let p = 1 / (1 + exp(Double(background[i]) - Double(particle[i])))
            let rounded: Double = particle[i] > background[i] ? 1 : 0
            let g: Double = labels[image * plane + i] != 0 ? 1 : 0
            intersectionHard += rounded * g
            predictedHard += rounded
            intersectionSoft += p * g
            predictedSoft += p
            truth += g
        }
        hard[image] = (2 * intersectionHard + 1) / (truth + predictedHard + 1)
        soft[image] = (2 * intersectionSoft + 1) / (truth + predictedSoft + 1)
    }
    return (hard, soft)
}

/// Scores of a model on a set of patches.
public struct Metrics: Codable, Hashable, Sendable {
    /// Mean over patches of the per-patch hard Dice (smoothing 1).
    public var hardDice: Double
    /// Mean over patches of the per-patch soft Dice (smoothing 1).
    public var softDice: Double
    /// Pixels predicted particle that are substrate, over all substrate pixels (pooled).
    public var falsePositiveRate: Double
    /// Pixels predicted substrate that are particle, over all particle pixels (pooled).
    public var falseNegativeRate: Double
    /// Mean pixel-wise softmax cross-entropy.
    public var loss: Double
    /// Patches scored (after any dihedral expansion).
    public var patches: Int

    public init(hardDice: Double, softDice: Double, falsePositiveRate: Double, falseNegativeRate: Double,
                loss: Double, patches: Int) {
        self.hardDice = hardDice
        self.softDice = softDice
        self.falsePositiveRate = falsePositiveRate
        self.falseNegativeRate = falseNegativeRate
        self.loss = loss
        self.patches = patches
    }
}

/// Accumulates metrics batch by batch (sums in batch order, so the result is deterministic).
struct MetricsAccumulator {
    var hardSum: Double = 0
    var softSum: Double = 0
    var lossSum: Double = 0
    var pixels: Double = 0
    var patches = 0
    var falsePositives: Double = 0
    var negatives: Double = 0
    var falseNegatives: Double = 0
    var positives: Double = 0

    mutating func add(logits: Tensor, labels: [UInt8], loss: Double) {
        let scores = diceScores(logits: logits, labels: labels)
        hardSum += scores.hard.reduce(0, +)
        softSum += scores.soft.reduce(0, +)
        patches += logits.n
        let pixelCount = Double(logits.n * logits.plane)
        lossSum += loss * pixelCount
        pixels += pixelCount
        let predicted = hardPrediction(logits)
        for i in 0..<predicted.count {
            if labels[i] != 0 {
                positives += 1
                if predicted[i] == 0 { falseNegatives += 1 }
            } else {
                negatives += 1
                if predicted[i] != 0 { falsePositives += 1 }
            }
        }
    }

    var metrics: Metrics {
        Metrics(hardDice: patches > 0 ? hardSum / Double(patches) : 0,
                softDice: patches > 0 ? softSum / Double(patches) : 0,
                falsePositiveRate: negatives > 0 ? falsePositives / negatives : 0,
                falseNegativeRate: positives > 0 ? falseNegatives / positives : 0,
                loss: pixels > 0 ? lossSum / pixels : 0, patches: patches)
    }
}
