import Foundation
import Micrograph
@testable import Segmentation
import XCTest

final class LossKernelTests: XCTestCase {
    /// The vectorized softmax cross-entropy (its own exp and ln) against the definition in
    /// double precision: 2 and 3 classes, a plane off the 8-pixel vectors, logits far enough
    /// apart that some softmax terms underflow.
    func testSoftmaxCrossEntropyMatchesTheDefinition() {
        for classes in [2, 3] {
            let (n, h, w) = (2, 5, 37)
            let logits = Tensor([n, classes, h, w])
            var random = SplitMix64(seed: UInt64(classes))
            for i in 0..<logits.count { logits[i] = Float(random.nextGaussian() * 30) }
            let labels = (0..<(n * h * w)).map { _ in UInt8(random.next() % UInt64(classes)) }
            let gradient = Tensor(logits.shape)
            let loss = labels.withUnsafeBufferPointer { softmaxCrossEntropy(logits: logits, labels: $0, gradient: gradient, compute: serial) }
            var expected = 0.0
            let plane = h * w, pixels = Double(n * plane)
            for image in 0..<n {
                for p in 0..<plane {
                    let values = (0..<classes).map { Double(logits.plane(image, $0)[p]) }
                    let largest = values.max()!
                    let total = values.reduce(0) { $0 + exp($1 - largest) }
                    let label = Int(labels[image * plane + p])
                    expected += log(total) + largest - values[label]
                    for c in 0..<classes {
                        let softmax = exp(values[c] - largest) / total
                        let want = (softmax - (c == label ? 1 : 0)) / pixels
                        XCTAssertEqual(Double(gradient.plane(image, c)[p]), want, accuracy: 1e-6 / pixels,
                                       "class \(c) pixel \(p) of \(classes)")
                    }
                }
            }
            XCTAssertEqual(loss, expected / pixels, accuracy: 1e-6 * expected / pixels)
        }
    }
}

final class TensorPoolTests: XCTestCase {
    /// A large block handed back and taken again, by a tensor of its size or a smaller one, keeps
    /// the zero-fill promise, and blocks of other sizes are not confused with it.
    func testRecycledLargeBlocksComeBackZeroed() {
        let shape = [1, 1, 1024, 512]
        for round in 0..<3 {
            let dirty = Tensor(shape)
            XCTAssertTrue(dirty.values.allSatisfy { $0 == 0 }, "round \(round): a zeroed tensor held data")
            for i in stride(from: 0, to: dirty.count, by: 97) { dirty[i] = Float(i + 1) }
            let other = Tensor([1, 1, 1024, 513])
            other[other.count - 1] = 5
        }
        // A smaller tensor may take a larger dirty block: it is still zero over its whole count.
        do {
            let dirty = Tensor([1, 1, 1024, 1024])
            for i in stride(from: 0, to: dirty.count, by: 61) { dirty[i] = 7 }
        }
        let smaller = Tensor([1, 1, 600, 1024])
        XCTAssertTrue(smaller.values.allSatisfy { $0 == 0 }, "a reused larger block held data")
    }
}

final class FreshGradientTests: XCTestCase {
    /// A fresh input gradient is written, not added to whatever its recycled storage held: a
    /// second backward pass (whose storage is likely the first one's) gives the same values, for
    /// the 1 x 1, direct and im2col paths.
    func testFreshInputGradientsDoNotAccumulateOldStorage() {
        for (kernel, limit) in [(1, Int.max), (3, Int.max), (3, 0)] {
            let compute = ComputeSettings(directLimit: limit)
            let conv = Conv2d(name: "c", inChannels: 3, outChannels: 5, kernel: kernel)
            var random = SplitMix64(seed: 21)
            conv.initialize(&random)
            let input = Tensor([2, 3, 8, 40]), grad = Tensor([2, 5, 8, 40])
            for i in 0..<input.count { input[i] = Float(random.nextGaussian()) }
            for i in 0..<grad.count { grad[i] = Float(random.nextGaussian()) }
            let first = conv.backward(input: input, gradOutput: grad, compute: compute)!.values
            let second = conv.backward(input: input, gradOutput: grad, compute: compute)!.values
            XCTAssertEqual(first, second, "kernel \(kernel), direct limit \(limit)")
            XCTAssertTrue(first.contains { $0 != 0 })
        }
    }
}

final class CompanionConvolutionTests: XCTestCase {
    /// The 1 x 1 layer computed from the k x k layer's bands equals it computed on its own, and
    /// the k x k output is unchanged by the companion, on every instruction set and a plane off
    /// the pixel blocks.
    func testCompanionOutputEqualsTheLayerOnItsOwn() {
        for level in KernelInstructionSet.available {
            let compute = ComputeSettings(instructionSet: level)
            for (kernel, dilation) in [(3, 1), (5, 2)] {
                let conv = Conv2d(name: "c", inChannels: 5, outChannels: 6, kernel: kernel, dilation: dilation)
                let projection = Conv2d(name: "p", inChannels: 5, outChannels: 3, kernel: 1)
                var random = SplitMix64(seed: 31)
                conv.initialize(&random)
                projection.initialize(&random)
                let input = Tensor([2, 5, 11, 83])
                for i in 0..<input.count { input[i] = Float(random.nextGaussian()) }
                let output = Tensor([2, 6, 11, 83]), companion = Tensor([2, 3, 11, 83])
                conv.forwardDirect(input, into: output, companion: projection, companionOutput: companion, compute: compute)
                XCTAssertEqual(output.values, conv.forward(input, compute: compute).values, "\(level.name) k\(kernel)")
                let alone = projection.forward(input, compute: compute).values
                let worst = zip(companion.values, alone).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertLessThan(worst, 1e-5, "\(level.name) k\(kernel)")
            }
        }
    }

    /// A layer reading [skip, upsample(low)] band by band gives what it gives on the built
    /// concatenation, for itself and its companion.
    func testUpsampledInputEqualsTheBuiltConcatenation() {
        let conv = Conv2d(name: "c", inChannels: 7, outChannels: 5, kernel: 3)
        let projection = Conv2d(name: "p", inChannels: 7, outChannels: 2, kernel: 1)
        var random = SplitMix64(seed: 41)
        conv.initialize(&random)
        projection.initialize(&random)
        let skip = Tensor([2, 3, 10, 38]), low = Tensor([2, 4, 5, 19])
        for i in 0..<skip.count { skip[i] = Float(random.nextGaussian()) }
        for i in 0..<low.count { low[i] = Float(random.nextGaussian()) }
        let joined = upsampleConcat(skip: skip, low: low, compute: serial)
        let direct = Tensor([2, 5, 10, 38]), directCompanion = Tensor([2, 2, 10, 38])
        conv.forwardDirect(skip, upsampled: low, into: direct, companion: projection, companionOutput: directCompanion, compute: serial)
        let built = Tensor([2, 5, 10, 38]), builtCompanion = Tensor([2, 2, 10, 38])
        conv.forwardDirect(joined, into: built, companion: projection, companionOutput: builtCompanion, compute: serial)
        XCTAssertEqual(direct.values, built.values)
        XCTAssertEqual(directCompanion.values, builtCompanion.values)
    }

    /// The backward with a companion 1 x 1 layer equals the two backwards run one after the other
    /// (input gradient summed, every weight and bias gradient), with and without input gradient.
    func testCompanionBackwardEqualsTheTwoBackwards() {
        for needInput in [true, false] {
            func layers() -> (Conv2d, Conv2d) {
                let conv = Conv2d(name: "c", inChannels: 5, outChannels: 6, kernel: 3)
                let projection = Conv2d(name: "p", inChannels: 5, outChannels: 3, kernel: 1)
                var random = SplitMix64(seed: 51)
                conv.initialize(&random)
                projection.initialize(&random)
                return (conv, projection)
            }
            var random = SplitMix64(seed: 52)
            let input = Tensor([2, 5, 9, 37]), grad = Tensor([2, 6, 9, 37]), companionGrad = Tensor([2, 3, 9, 37])
            for t in [input, grad, companionGrad] { for i in 0..<t.count { t[i] = Float(random.nextGaussian()) } }
            let (fusedConv, fusedProjection) = layers()
            let fused = fusedConv.backward(input: input, gradOutput: grad, needInputGradient: needInput,
                                           companion: fusedProjection, companionGradient: companionGrad, compute: serial)
            let (conv, projection) = layers()
            let first = projection.backward(input: input, gradOutput: companionGrad, needInputGradient: needInput, compute: serial)
            let separate = conv.backward(input: input, gradOutput: grad, needInputGradient: needInput, accumulateInto: first, compute: serial)
            XCTAssertEqual(fused == nil, !needInput)
            func close(_ a: [Float], _ b: [Float], _ what: String) {
                XCTAssertEqual(a.count, b.count, what)
                let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-5, what)
            }
            if let fused, let separate { close(fused.values, separate.values, "input gradient") }
            close(fusedConv.weight.gradient.values, conv.weight.gradient.values, "3 x 3 weights")
            close(fusedConv.bias.gradient.values, conv.bias.gradient.values, "3 x 3 bias")
            close(fusedProjection.weight.gradient.values, projection.weight.gradient.values, "1 x 1 weights")
            close(fusedProjection.bias.gradient.values, projection.bias.gradient.values, "1 x 1 bias")
        }
    }
}
