import Foundation

/// The objective a network is trained on (`--loss`). The study's is `crossEntropy`; the others
/// answer class imbalance (few particle pixels) in the usual ways. Every evaluation still reports
/// the mean cross-entropy as `Metrics.loss`, so models trained on different objectives compare.
public enum TrainingLoss: String, Codable, CaseIterable, Hashable, Sendable {
    /// Mean pixel-wise softmax cross-entropy (the study's).
    case crossEntropy = "cross-entropy"
    /// Cross-entropy with class weights total / (classes x count of the class) over the fold's
    /// training labels (scikit-learn's "balanced" rule), normalized by the sum of the weights of
    /// the targets as PyTorch's `cross_entropy(weight:)` does.
    case weightedCrossEntropy = "weighted-cross-entropy"
    /// 1 - soft Dice of the particle class over the whole batch, smoothing 1:
    /// 1 - (2 sum(p g) + 1) / (sum(p) + sum(g) + 1), p the softmax probability of class 1.
    case dice
    /// Cross-entropy plus the soft Dice loss.
    case crossEntropyDice = "cross-entropy+dice"
    /// Focal loss (Lin et al. 2017), gamma 2, no alpha: mean of -(1 - p_t)^2 log p_t.
    case focal
}

/// Class weights of `TrainingLoss.weightedCrossEntropy` for labels `0..<classes`: total / (classes x
/// count), a class with no pixels weighing 0.
public func balancedClassWeights(_ labels: some Sequence<UInt8>, classes: Int) -> [Double] {
    var counts = [Double](repeating: 0, count: classes)
    var total = 0.0
    for label in labels where Int(label) < classes {
        counts[Int(label)] += 1
        total += 1
    }
    return counts.map { $0 > 0 ? total / (Double(classes) * $0) : 0 }
}

/// The value of `loss` for logits `[n, k, h, w]` against labels `[n * h * w]` (values `0..<k`),
/// and d loss / d logits written into `gradient` when given. Cross-entropy runs the C kernel;
/// the others sum in double, image by image, pixel by pixel, so the result is deterministic.
/// The Dice terms need two classes or more and score class 1.
/// - Parameter classWeights: one per class, for `weightedCrossEntropy` (ignored otherwise).
public func trainingLoss(_ loss: TrainingLoss, logits: Tensor, labels: UnsafeBufferPointer<UInt8>, classWeights: [Double] = [],
                         gradient: Tensor? = nil, compute: ComputeSettings) -> Double {
    let n = logits.n, k = logits.c, plane = logits.plane
    precondition(labels.count == n * plane, "labels \(labels.count) for logits \(logits.shape)")
    switch loss {
    case .crossEntropy:
        return softmaxCrossEntropy(logits: logits, labels: labels, gradient: gradient, compute: compute)
    case .crossEntropyDice:
        let crossEntropy = softmaxCrossEntropy(logits: logits, labels: labels, gradient: gradient, compute: compute)
        return crossEntropy + softDiceLoss(logits: logits, labels: labels, gradient: gradient, accumulate: true)
    case .dice:
        return softDiceLoss(logits: logits, labels: labels, gradient: gradient, accumulate: false)
    case .weightedCrossEntropy, .focal:
        precondition(loss == .focal || classWeights.count == k, "weighted cross-entropy needs \(k) class weights")
        var probabilities = [Double](repeating: 0, count: k)
        var total = 0.0, weightSum = 0.0
        for image in 0..<n {
            for pixel in 0..<plane {
                softmax(logits, image: image, pixel: pixel, into: &probabilities)
                let target = Int(labels[image * plane + pixel])
                let p = max(probabilities[target], 1e-45)
                if loss == .focal {
                    total += -(1 - p) * (1 - p) * Foundation.log(p)
                } else {
                    total += -classWeights[target] * Foundation.log(p)
                    weightSum += classWeights[target]
                }
            }
        }
        let count = Double(n * plane)
        guard let gradient else { return loss == .focal ? total / count : total / max(weightSum, 1e-300) }
        for image in 0..<n {
            for pixel in 0..<plane {
                softmax(logits, image: image, pixel: pixel, into: &probabilities)
                let target = Int(labels[image * plane + pixel])
                let p = max(probabilities[target], 1e-45)
                for channel in 0..<k {
                    let delta = (channel == target ? 1.0 : 0.0) - probabilities[channel]
                    let value: Double
                    if loss == .focal {
                        // d/dp [-(1-p)^2 log p] = 2 (1-p) log p - (1-p)^2 / p, and dp/dz_j = p (delta_jt - p_j).
                        let dLossdP = 2 * (1 - p) * Foundation.log(p) - (1 - p) * (1 - p) / p
                        value = dLossdP * p * delta / count
                    } else {
                        value = -classWeights[target] * delta / max(weightSum, 1e-300)
                    }
                    gradient.plane(image, channel)[pixel] = Float(value)
                }
            }
        }
        return loss == .focal ? total / count : total / max(weightSum, 1e-300)
    }
}

/// Softmax over the channels of one pixel, in double.
private func softmax(_ logits: Tensor, image: Int, pixel: Int, into probabilities: inout [Double]) {
    let k = logits.c
    var largest = -Double.infinity
    for channel in 0..<k { largest = max(largest, Double(logits.plane(image, channel)[pixel])) }
    var sum = 0.0
    for channel in 0..<k {
        probabilities[channel] = Foundation.exp(Double(logits.plane(image, channel)[pixel]) - largest)
        sum += probabilities[channel]
    }
    for channel in 0..<k { probabilities[channel] /= sum }
}

/// 1 - soft Dice of class 1 over the batch (smoothing 1); its gradient is written into, or with
/// `accumulate` added to, `gradient`.
private func softDiceLoss(logits: Tensor, labels: UnsafeBufferPointer<UInt8>, gradient: Tensor?, accumulate: Bool) -> Double {
    let n = logits.n, k = logits.c, plane = logits.plane
    precondition(k >= 2, "the Dice loss scores class 1 and needs 2 classes or more")
    var probabilities = [Double](repeating: 0, count: k)
    var intersection = 0.0, predicted = 0.0, truth = 0.0
    for image in 0..<n {
        for pixel in 0..<plane {
            softmax(logits, image: image, pixel: pixel, into: &probabilities)
            let g: Double = labels[image * plane + pixel] == 1 ? 1 : 0
            intersection += probabilities[1] * g
            predicted += probabilities[1]
            truth += g
        }
    }
    let denominator = predicted + truth + 1
    let loss = 1 - (2 * intersection + 1) / denominator
    guard let gradient else { return loss }
    for image in 0..<n {
        for pixel in 0..<plane {
            softmax(logits, image: image, pixel: pixel, into: &probabilities)
            let g: Double = labels[image * plane + pixel] == 1 ? 1 : 0
            // d loss / d p1 = -(2 g (P + G + 1) - (2 I + 1)) / (P + G + 1)^2; dp1/dz_j = p1 (delta_j1 - p_j).
            let dLossdP1 = -(2 * g * denominator - (2 * intersection + 1)) / (denominator * denominator)
            for channel in 0..<k {
                let value = Float(dLossdP1 * probabilities[1] * ((channel == 1 ? 1 : 0) - probabilities[channel]))
                let target = gradient.plane(image, channel) + pixel
                target.pointee = accumulate ? target.pointee + value : value
            }
        }
    }
    return loss
}
