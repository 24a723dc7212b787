import Foundation
import Micrograph
@testable import Segmentation
import XCTest

/// The training objectives' gradients against central finite differences of their values, and
/// their values against closed forms.
final class LossTests: XCTestCase {
    private func randomLogits(_ shape: [Int], seed: UInt64) -> Tensor {
        let logits = Tensor(shape)
        var random = SplitMix64(seed: seed)
        for i in 0..<logits.count { logits[i] = Float(random.nextGaussian() * 1.5) }
        return logits
    }

    func testGradientsMatchFiniteDifferences() {
        let shape = [2, 2, 3, 4], pixels = 2 * 3 * 4
        var random = SplitMix64(seed: 9)
        let labels = (0..<pixels).map { _ in UInt8(random.nextUnitDouble() < 0.3 ? 1 : 0) }
        let weights = balancedClassWeights(labels, classes: 2)
        let compute = ComputeSettings(threads: 1)
        for loss in TrainingLoss.allCases {
            let logits = randomLogits(shape, seed: 4)
            let gradient = Tensor(shape)
            let value = labels.withUnsafeBufferPointer {
                trainingLoss(loss, logits: logits, labels: $0, classWeights: weights, gradient: gradient, compute: compute)
            }
            XCTAssertTrue(value.isFinite && value > 0, "\(loss.rawValue): \(value)")
            var worst = 0.0
            for index in 0..<logits.count {
                let original = logits[index], step: Float = 1e-2
                func at(_ x: Float) -> Double {
                    logits[index] = x
                    defer { logits[index] = original }
                    return labels.withUnsafeBufferPointer {
                        trainingLoss(loss, logits: logits, labels: $0, classWeights: weights, compute: compute)
                    }
                }
                let numeric = (at(original + step) - at(original - step)) / Double(2 * step)
                let difference = abs(numeric - Double(gradient[index]))
                worst = max(worst, difference)
                XCTAssertEqual(Double(gradient[index]), numeric, accuracy: 2e-4 + 2e-3 * abs(numeric),
                               "\(loss.rawValue): d/dlogit[\(index)]")
            }
            print("\(loss.rawValue): loss \(value), worst |analytic - finite difference| \(worst)")
        }
    }

    func testValuesOfSimpleCases() {
        // Two pixels, one per class; logits chosen so the class-1 probability is 0.5 and sigmoid(2).
        let logits = Tensor([1, 2, 1, 2])
        logits[0] = 0; logits[1] = 0; logits[2] = 0; logits[3] = 2
        let labels: [UInt8] = [0, 1]
        let compute = ComputeSettings(threads: 1)
        func value(_ loss: TrainingLoss, _ weights: [Double] = []) -> Double {
            labels.withUnsafeBufferPointer { trainingLoss(loss, logits: logits, labels: $0, classWeights: weights, compute: compute) }
        }
        let p = 1 / (1 + exp(-2.0))
        let crossEntropy = (log(2.0) - log(p)) / 2
        XCTAssertEqual(value(.crossEntropy), crossEntropy, accuracy: 1e-6)
        XCTAssertEqual(value(.weightedCrossEntropy, [1, 3]), (log(2.0) - 3 * log(p)) / 4, accuracy: 1e-9)
        let dice = 1 - (2 * p + 1) / (0.5 + p + 1 + 1)
        XCTAssertEqual(value(.dice), dice, accuracy: 1e-9)
        XCTAssertEqual(value(.crossEntropyDice), crossEntropy + dice, accuracy: 1e-6)
        XCTAssertEqual(value(.focal), (0.25 * log(2.0) - (1 - p) * (1 - p) * log(p)) / 2, accuracy: 1e-9)
        XCTAssertEqual(balancedClassWeights([0, 0, 0, 1], classes: 2), [4.0 / 6, 2])
    }
}
