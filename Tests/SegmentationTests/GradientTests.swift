import Foundation
import Micrograph
@testable import Segmentation
import XCTest

/// Backward passes against central finite differences. Float32 forward passes limit the
/// agreement to about 1e-3 relative, so the checks compare whole gradient vectors by relative
/// error (||numeric - analytic|| / ||analytic|| < 2e-2), with a smooth scalar loss
/// L = sum(output * R) for a fixed random R unless the layer is the loss itself.
final class GradientTests: XCTestCase {
    private func randomTensor(_ shape: [Int], seed: UInt64, scale: Double = 1) -> Tensor {
        var random = SplitMix64(seed: seed)
        let tensor = Tensor(shape)
        for i in 0..<tensor.count { tensor[i] = Float(random.nextGaussian() * scale) }
        return tensor
    }

    private func dot(_ a: Tensor, _ b: Tensor) -> Double {
        var sum: Double = 0
        for i in 0..<a.count { sum += Double(a[i]) * Double(b[i]) }
        return sum
    }

    /// Compares `analytic` with central differences of `loss` over (up to `samples`) entries of `variable`.
    private func check(_ name: String, variable: Tensor, analytic: Tensor, samples: Int = 40,
                       step: Float = 1e-2, loss: () -> Double, file: StaticString = #filePath, line: UInt = #line) {
        var random = SplitMix64(seed: 99)
        let indices = variable.count <= samples ? Array(0..<variable.count)
            : (0..<samples).map { _ in Int(random.next() % UInt64(variable.count)) }
        var differenceSquared: Double = 0, normSquared: Double = 0
        for index in indices {
            let original = variable[index]
            variable[index] = original + step
            let plus = loss()
            variable[index] = original - step
            let minus = loss()
            variable[index] = original
            let numeric = (plus - minus) / (2 * Double(step))
            differenceSquared += (numeric - Double(analytic[index])) * (numeric - Double(analytic[index]))
            normSquared += Double(analytic[index]) * Double(analytic[index])
        }
        XCTAssertGreaterThan(normSquared, 0, "\(name): analytic gradient is zero", file: file, line: line)
        let relative = (differenceSquared / max(normSquared, 1e-30)).squareRoot()
        XCTAssertLessThan(relative, 2e-2, "\(name): relative gradient error \(relative)", file: file, line: line)
    }

    func testConvolutionGradients() {
        for (kernel, dilation) in [(3, 1), (5, 1), (3, 2), (1, 1)] {
            let conv = Conv2d(name: "c", inChannels: 3, outChannels: 2, kernel: kernel, dilation: dilation)
            var random = SplitMix64(seed: 1)
            conv.initialize(&random)
            let input = randomTensor([2, 3, 7, 6], seed: 2)
            let weights = randomTensor([2, 2, 7, 6], seed: 3)
            let loss = { self.dot(conv.forward(input, compute: serial), weights) }
            conv.weight.gradient.zero(); conv.bias.gradient.zero()
            let gradInput = conv.backward(input: input, gradOutput: weights, compute: serial)!
            let label = "conv k\(kernel) d\(dilation)"
            check("\(label) input", variable: input, analytic: gradInput, loss: loss)
            check("\(label) weight", variable: conv.weight.value, analytic: conv.weight.gradient, loss: loss)
            check("\(label) bias", variable: conv.bias.value, analytic: conv.bias.gradient, loss: loss)
        }
    }

    func testBatchNormReluResidualGradients() {
        let norm = BatchNorm2d(name: "bn", channels: 3)
        for c in 0..<3 { norm.weight.value[c] = 0.5 + Float(c); norm.bias.value[c] = 0.1 * Float(c) }
        let input = randomTensor([2, 3, 5, 4], seed: 4, scale: 2)
        let residual = randomTensor([2, 3, 5, 4], seed: 5)
        let weights = randomTensor([2, 3, 5, 4], seed: 6)
        func forward() -> Tensor {
            let out = Tensor(input.shape)
            norm.apply(input, norm.batchStatistics(input, compute: serial), residual: residual, relu: true, output: out, compute: serial)
            return out
        }
        let loss = { self.dot(forward(), weights) }
        let output = forward()
        let gradInput = Tensor(input.shape)
        norm.backward(input: input, gradOutput: weights.copy(), statistics: norm.batchStatistics(input, compute: serial), gradInput: gradInput,
                      reluOutput: output, compute: serial)
        check("bn input", variable: input, analytic: gradInput, samples: 120, step: 1e-3, loss: loss)
        check("bn weight", variable: norm.weight.value, analytic: norm.weight.gradient, step: 1e-3, loss: loss)
        check("bn bias", variable: norm.bias.value, analytic: norm.bias.gradient, step: 1e-3, loss: loss)
    }

    func testBatchNormRunningStatisticsFollowPyTorch() {
        let norm = BatchNorm2d(name: "bn", channels: 1)
        let input = Tensor([2, 1, 1, 2], values: [1, 2, 3, 6])
        _ = norm.batchStatistics(input, compute: serial)
        // mean 3, biased variance 3.5, unbiased 14/3.
        XCTAssertEqual(norm.runningMean[0], 0.3, accuracy: 1e-6)
        XCTAssertEqual(norm.runningVariance[0], 0.9 + 0.1 * 14 / 3, accuracy: 1e-6)
        XCTAssertEqual(norm.batchesTracked, 1)
    }

    func testPoolUpsampleConcatAndLossGradients() {
        let input = randomTensor([2, 2, 6, 8], seed: 7)
        let (pooled, winners) = maxPool2(input, compute: serial)
        let weights = randomTensor(pooled.shape, seed: 8)
        let gradInput = Tensor(input.shape)
        maxPool2BackwardAdd(weights, winners: winners, into: gradInput, compute: serial)
        check("max-pool", variable: input, analytic: gradInput, step: 1e-3, loss: { self.dot(maxPool2(input, compute: serial).0, weights) })

        let skip = randomTensor([2, 2, 6, 8], seed: 9), low = randomTensor([2, 3, 3, 4], seed: 10)
        let concatWeights = randomTensor([2, 5, 6, 8], seed: 11)
        let (gradSkip, gradLow) = upsampleConcatBackward(concatWeights, skipChannels: skip.c, lowShape: low.shape, compute: serial)
        let concatLoss = { self.dot(upsampleConcat(skip: skip, low: low, compute: serial), concatWeights) }
        check("concat skip", variable: skip, analytic: gradSkip, loss: concatLoss)
        check("upsample", variable: low, analytic: gradLow, loss: concatLoss)

        let logits = randomTensor([2, 3, 4, 5], seed: 12, scale: 2)
        var random = SplitMix64(seed: 13)
        let labels = (0..<40).map { _ in UInt8(random.next() % 3) }
        let gradLogits = Tensor(logits.shape)
        labels.withUnsafeBufferPointer { _ = softmaxCrossEntropy(logits: logits, labels: $0, gradient: gradLogits, compute: serial) }
        check("cross-entropy", variable: logits, analytic: gradLogits, step: 1e-2) {
            labels.withUnsafeBufferPointer { softmaxCrossEntropy(logits: logits, labels: $0, compute: serial) }
        }
    }

    /// For the whole network, ReLU and max-pool kinks near the evaluation point make a few
    /// central differences wrong at any step size; a wrong backward pass disagrees almost
    /// everywhere. So: each parameter has a majority of its sampled entries, and the network 85% of
    /// all sampled entries, within 5% of the parameter's gradient RMS. Returns (agreeing, sampled).
    private func checkMostly(_ name: String, variable: Tensor, analytic: Tensor, samples: Int = 16,
                             step: Float = 1e-3, loss: () -> Double, file: StaticString = #filePath, line: UInt = #line) -> (Int, Int) {
        var random = SplitMix64(seed: 98)
        let indices = variable.count <= samples ? Array(0..<variable.count)
            : (0..<samples).map { _ in Int(random.next() % UInt64(variable.count)) }
        var squared: Double = 0
        for i in 0..<analytic.count { squared += Double(analytic[i]) * Double(analytic[i]) }
        let rms = (squared / Double(analytic.count)).squareRoot()
        XCTAssertGreaterThan(rms, 0, "\(name): analytic gradient is zero", file: file, line: line)
        var agreeing = 0
        for index in indices {
            let original = variable[index]
            variable[index] = original + step
            let plus = loss()
            variable[index] = original - step
            let minus = loss()
            variable[index] = original
            let numeric = (plus - minus) / (2 * Double(step))
            if abs(numeric - Double(analytic[index])) <= 0.05 * rms + 1e-3 { agreeing += 1 }
        }
        XCTAssertGreaterThan(Double(agreeing), 0.5 * Double(indices.count),
                             "\(name): only \(agreeing) of \(indices.count) entries agree", file: file, line: line)
        return (agreeing, indices.count)
    }

    func testWholeNetworkGradients() {
        // The loss here is sum(logits * R): its gradients are O(1), so float32 rounding of the
        // loss stays far below the differences being measured. The cross-entropy gradient itself
        // is checked in testPoolUpsampleConcatAndLossGradients.
        let network = ResidualUNet(architecture: UNetArchitecture(widths: [3, 4], bottleneckWidth: 5), seed: 21)
        let input = randomTensor([2, 1, 8, 8], seed: 22)
        let weights = randomTensor([2, 2, 8, 8], seed: 23)
        let loss = { self.dot(network.forward(input, training: true), weights) }
        network.zeroGradients()
        _ = network.forward(input, training: true)
        network.backward(weights.copy())
        var totalAgreeing = 0, totalSampled = 0
        for parameter in network.parameters {
            // A conv bias right before a training-mode BatchNorm has an exactly zero gradient.
            if parameter.name.hasSuffix("conv1.bias") || parameter.name.hasSuffix("conv2.bias") {
                var largest: Float = 0
                for i in 0..<parameter.gradient.count { largest = max(largest, abs(parameter.gradient[i])) }
                XCTAssertLessThan(largest, 1e-3, parameter.name)
                continue
            }
            let (agreeing, sampled) = checkMostly(parameter.name, variable: parameter.value, analytic: parameter.gradient, loss: loss)
            totalAgreeing += agreeing
            totalSampled += sampled
        }
        XCTAssertGreaterThanOrEqual(Double(totalAgreeing), 0.85 * Double(totalSampled), "\(totalAgreeing) of \(totalSampled) agree")
    }

    func testAdamMatchesPyTorchUpdate() {
        // Two steps of torch.optim.Adam(lr=0.1) on p = [1, -2] with gradients [0.5, 0.1] then [-0.2, 0.3]:
        // step 1 moves each weight by -lr * sign(g); step 2 by the bias-corrected ratio.
        let parameter = Parameter(name: "p", shape: [2])
        parameter.value[0] = 1; parameter.value[1] = -2
        var adam = Adam(learningRate: 0.1)
        parameter.gradient[0] = 0.5; parameter.gradient[1] = 0.1
        adam.update([parameter])
        XCTAssertEqual(parameter.value[0], 0.9, accuracy: 1e-6)
        XCTAssertEqual(parameter.value[1], -2.1, accuracy: 1e-6)
        parameter.gradient[0] = -0.2; parameter.gradient[1] = 0.3
        adam.update([parameter])
        func expected(_ g1: Double, _ g2: Double) -> Double {
            let m = 0.9 * 0.1 * g1 + 0.1 * g2, v = 0.999 * 0.001 * g1 * g1 + 0.001 * g2 * g2
            return 0.1 * (m / (1 - 0.81)) / ((v / (1 - 0.999 * 0.999)).squareRoot() + 1e-8)
        }
        XCTAssertEqual(Double(parameter.value[0]), 0.9 - expected(0.5, -0.2), accuracy: 1e-6)
        XCTAssertEqual(Double(parameter.value[1]), -2.1 - expected(0.1, 0.3), accuracy: 1e-5)
    }
}

final class DirectConvolutionTests: XCTestCase {
    /// The direct kernel and the im2col + sgemm path agree on forward, input and weight gradients.
    func testDirectAndGemmPathsAgree() {
        for (kernel, dilation) in [(3, 1), (5, 2)] {
            var results: [[Float]] = []
            for limit in [0, 1000] {
                let compute = ComputeSettings(directLimit: limit)
                let conv = Conv2d(name: "c", inChannels: 3, outChannels: 4, kernel: kernel, dilation: dilation)
                var random = SplitMix64(seed: 4)
                conv.initialize(&random)
                XCTAssertEqual(conv.usesDirectKernel(compute), limit > 0)
                let input = Tensor([3, 3, 9, 11]), grad = Tensor([3, 4, 9, 11])
                for i in 0..<input.count { input[i] = Float(random.nextGaussian()) }
                for i in 0..<grad.count { grad[i] = Float(random.nextGaussian()) }
                let output = conv.forward(input, compute: compute)
                let gradInput = conv.backward(input: input, gradOutput: grad, compute: compute)!
                results.append(output.values + gradInput.values + conv.weight.gradient.values + conv.bias.gradient.values)
            }
            XCTAssertEqual(results[0].count, results[1].count)
            for (a, b) in zip(results[0], results[1]) { XCTAssertEqual(a, b, accuracy: 1e-3 * max(1, abs(a))) }
        }
    }

    /// The 1 x 1 kernels (forward, weight and input gradients) against the definitions, with
    /// channel counts off the kernels' 4 x 2 blocking and a plane off their 16-pixel chunks.
    func testPointwiseConvolutionMatchesItsDefinition() {
        let (cin, cout, n, h, w) = (5, 6, 2, 9, 11)
        let conv = Conv2d(name: "p", inChannels: cin, outChannels: cout, kernel: 1)
        var random = SplitMix64(seed: 9)
        conv.initialize(&random)
        let input = Tensor([n, cin, h, w]), grad = Tensor([n, cout, h, w])
        for i in 0..<input.count { input[i] = Float(random.nextGaussian()) }
        for i in 0..<grad.count { grad[i] = Float(random.nextGaussian()) }
        let output = conv.forward(input, compute: serial)
        let gradInput = conv.backward(input: input, gradOutput: grad, compute: serial)!
        let plane = h * w
        for image in 0..<n {
            for p in 0..<plane {
                for o in 0..<cout {
                    var expected = Double(conv.bias.value[o])
                    for i in 0..<cin { expected += Double(conv.weight.value[o * cin + i]) * Double(input.plane(image, i)[p]) }
                    XCTAssertEqual(Double(output.plane(image, o)[p]), expected, accuracy: 1e-5)
                }
                for i in 0..<cin {
                    var expected = 0.0
                    for o in 0..<cout { expected += Double(conv.weight.value[o * cin + i]) * Double(grad.plane(image, o)[p]) }
                    XCTAssertEqual(Double(gradInput.plane(image, i)[p]), expected, accuracy: 1e-5)
                }
            }
        }
        for o in 0..<cout {
            for i in 0..<cin {
                var expected = 0.0
                for image in 0..<n {
                    for p in 0..<plane { expected += Double(grad.plane(image, o)[p]) * Double(input.plane(image, i)[p]) }
                }
                XCTAssertEqual(Double(conv.weight.gradient[o * cin + i]), expected, accuracy: 1e-4)
            }
        }
    }
}

final class InstructionSetTests: XCTestCase {
    /// Every kernel variant the CPU can run (generic, AVX2, AVX-512 with its wider register
    /// blocks) gives the im2col + sgemm results, on a plane wide enough for the 64-, 32- and
    /// 16-pixel blocks plus a ragged tail, with channel counts off the 4- and 2-channel blockings.
    func testEveryInstructionSetMatchesTheGemmPath() {
        for (kernel, dilation) in [(3, 1), (5, 2)] {
            let input = Tensor([2, 3, 6, 107]), grad = Tensor([2, 6, 6, 107])
            var random = SplitMix64(seed: 11)
            for i in 0..<input.count { input[i] = Float(random.nextGaussian()) }
            for i in 0..<grad.count { grad[i] = Float(random.nextGaussian()) }
            func run(level: KernelInstructionSet, limit: Int) -> [Float] {
                let compute = ComputeSettings(instructionSet: level, directLimit: limit)
                XCTAssertEqual(compute.instructionSet, level)
                let conv = Conv2d(name: "c", inChannels: 3, outChannels: 6, kernel: kernel, dilation: dilation)
                var weights = SplitMix64(seed: 4)
                conv.initialize(&weights)
                let output = conv.forward(input, compute: compute)
                let gradInput = conv.backward(input: input, gradOutput: grad, compute: compute)!
                return output.values + gradInput.values + conv.weight.gradient.values + conv.bias.gradient.values
            }
            let reference = run(level: .generic, limit: 0)
            for level in KernelInstructionSet.available {
                let direct = run(level: level, limit: .max)
                XCTAssertEqual(direct.count, reference.count)
                let worst = zip(direct, reference).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
                XCTAssertLessThan(worst, 1e-4, "\(level.name) k\(kernel) d\(dilation)")
            }
        }
    }
}
