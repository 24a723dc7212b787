import CKernels
import Foundation
import Micrograph

/// A trainable array: its value, the gradient accumulated by `backward`, and Adam's moments.
public final class Parameter {
    /// The PyTorch state_dict name, e.g. `downs.0.conv1.weight`.
    public let name: String
    public let value: Tensor
    public let gradient: Tensor
    let firstMoment: Tensor
    let secondMoment: Tensor

    init(name: String, shape: [Int]) {
        self.name = name
        value = Tensor(shape)
        gradient = Tensor(shape)
        firstMoment = Tensor(shape)
        secondMoment = Tensor(shape)
    }
}

/// A 2-D convolution, stride 1, "same" padding (`dilation * (kernel - 1) / 2` on each side), with
/// bias. Weight layout `[out, in, kernel, kernel]` (PyTorch OIHW).
/// k x k layers up to 7 x 7 run the banded direct kernels of DirectConvolution.swift, 1 x 1
/// layers C pointwise kernels, larger kernels im2col + OpenBLAS sgemm; one image at a time per
/// thread, gradients accumulated over the batch in image order, so results do not depend on the
/// thread count.
public final class Conv2d {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: Int
    public let dilation: Int
    public let weight: Parameter
    public let bias: Parameter

    public init(name: String, inChannels: Int, outChannels: Int, kernel: Int, dilation: Int = 1) {
        precondition(kernel % 2 == 1, "kernel must be odd for same padding")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.dilation = dilation
        weight = Parameter(name: "\(name).weight", shape: [outChannels, inChannels, kernel, kernel])
        bias = Parameter(name: "\(name).bias", shape: [outChannels])
    }

    var reduction: Int { inChannels * kernel * kernel }

    /// Kaiming-normal weights (fan_in, gain sqrt 2: PyTorch's `kaiming_normal_` defaults) and
    /// PyTorch's default bias draw U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    func initialize(_ random: inout SplitMix64) {
        let fanIn = Double(reduction)
        let deviation = (2.0 / fanIn).squareRoot()
        for i in 0..<weight.value.count { weight.value[i] = Float(random.nextGaussian() * deviation) }
        let bound = 1 / fanIn.squareRoot()
        for i in 0..<bias.value.count { bias.value[i] = Float((random.nextUnitDouble() * 2 - 1) * bound) }
    }

    /// Images are split into one contiguous chunk per thread, each chunk running its own
    /// single-threaded sgemm calls (a batch smaller than the thread count lets OpenBLAS thread
    /// instead).
    public func forward(_ input: Tensor, compute: ComputeSettings) -> Tensor {
        precondition(input.c == inChannels, "conv \(weight.name): \(input.c) channels in, expected \(inChannels)")
        let output = Tensor(uninitialized: [input.n, outChannels, input.h, input.w])
        let plane = input.plane
        let chunks = compute.chunkCount(input.n)
        if forwardIsDirect {
            forwardDirect(input, into: output, compute: compute)
            return output
        }
        let scratch = kernel == 1 ? [] : (0..<chunks).map { _ in Tensor(uninitialized: [reduction * plane]) }
        compute.parallelChunks(input.n) { chunk, images in
            for image in images {
                let out = output.plane(image, 0)
                if kernel == 1 {
                    hrtem_pointwise(compute.level, input.plane(image, 0), inChannels, out, outChannels, plane, weight.value.data,
                                    bias.value.data, 0, 0)
                    continue
                }
                for channel in 0..<outChannels {
                    (out + channel * plane).update(repeating: bias.value[channel], count: plane)
                }
                let columns = columnMatrix(input, image: image, scratch: scratch[chunk].data)
                sgemm(transA: false, transB: false, m: outChannels, n: plane, k: reduction,
                      a: weight.value.data, lda: reduction, b: columns, ldb: plane, beta: 1, c: out, ldc: plane)
            }
        }
        return output
    }

    /// Accumulates the weight and bias gradients for `gradOutput`, and returns the input
    /// gradient (added into `accumulateInto` when given, so a tensor feeding two layers
    /// collects both), or nil when `needInputGradient` is false. With `companion`, a 1 x 1 layer
    /// over the same input whose output gradient is `companionGradient`, its gradients are
    /// accumulated too and its input gradient is included in the one returned: on the direct path
    /// from the same banded pass over the input. Per-chunk partial gradients are summed in chunk
    /// order.
    @discardableResult
    public func backward(input: Tensor, gradOutput: Tensor, needInputGradient: Bool = true,
                         accumulateInto: Tensor? = nil, companion: Conv2d? = nil,
                         companionGradient: Tensor? = nil, compute: ComputeSettings) -> Tensor? {
        if let companion {
            precondition(companion.kernel == 1 && companion.inChannels == inChannels && companionGradient != nil,
                         "companion \(companion.weight.name) of \(weight.name)")
            if !usesDirectKernel(compute) || accumulateInto != nil {
                let first = companion.backward(input: input, gradOutput: companionGradient!, needInputGradient: needInputGradient,
                                               accumulateInto: accumulateInto, compute: compute)
                return backward(input: input, gradOutput: gradOutput, needInputGradient: needInputGradient, accumulateInto: first,
                                compute: compute)
            }
        }
        let plane = input.plane
        // A fresh input gradient is written, not added to, so it needs no clearing pass.
        let accumulate = accumulateInto != nil
        let gradInput = needInputGradient ? (accumulateInto ?? Tensor(uninitialized: input.shape)) : nil
        let chunks = compute.chunkCount(input.n)
        let direct = usesDirectKernel(compute)
        let scratch = kernel == 1 || direct ? [] : (0..<chunks).map { _ in Tensor(uninitialized: [reduction, plane]) }
        let backwardWeights = direct && gradInput != nil ? packedBackwardWeights() : []
        let transposedWeights = kernel == 1 && gradInput != nil ? transposedPointwiseWeights() : []
        let weightPartials = (0..<chunks).map { _ in Tensor([outChannels, reduction]) }
        let biasPartials = Tensor([chunks, outChannels])
        let companionCount = companion?.outChannels ?? 0
        let companionTransposed = companion?.transposedPointwiseWeights() ?? []
        let companionPartials = (0..<chunks).map { _ in Tensor([max(1, companionCount * inChannels)]) }
        let companionBiasPartials = Tensor([max(1, chunks * companionCount)])
        compute.parallelChunks(input.n) { chunk, images in
            for image in images {
                let gradOut = gradOutput.plane(image, 0)
                for channel in 0..<outChannels {
                    biasPartials[chunk * outChannels + channel] += blockedSum(gradOut + channel * plane, count: plane, compute)
                }
                if let companionGradient {
                    for channel in 0..<companionCount {
                        companionBiasPartials[chunk * companionCount + channel] +=
                            blockedSum(companionGradient.plane(image, channel), count: plane, compute)
                    }
                }
                if direct {
                    backwardWeights.withUnsafeBufferPointer { packed in
                        companionTransposed.withUnsafeBufferPointer { companionTransposed in
                            directBackward(input: input, gradOutput: gradOutput, image: image, packedBackward: packed.baseAddress,
                                           gradInput: gradInput, accumulate: accumulate, into: weightPartials[chunk].data,
                                           companionGradient: companionGradient,
                                           companionBackward: companionTransposed.baseAddress,
                                           companionInto: companionPartials[chunk].data, compute: compute)
                        }
                    }
                    continue
                }
                if kernel == 1 {
                    pointwiseBackward(input, gradOutput: gradOutput, image: image, gradInput: gradInput, accumulate: accumulate,
                                      transposedWeights: transposedWeights, into: weightPartials[chunk].data, compute: compute)
                    continue
                }
                let columns = columnMatrix(input, image: image, scratch: scratch[chunk].data)
                sgemm(transA: false, transB: true, m: outChannels, n: reduction, k: plane,
                      a: gradOut, lda: plane, b: columns, ldb: plane, beta: 1, c: weightPartials[chunk].data, ldc: reduction)
                guard let gradInput else { continue }
                if !accumulate { gradInput.plane(image, 0).update(repeating: 0, count: inChannels * plane) }
                sgemm(transA: true, transB: false, m: reduction, n: plane, k: outChannels,
                      a: weight.value.data, lda: reduction, b: gradOut, ldb: plane, beta: 0, c: scratch[chunk].data, ldc: plane)
                col2imAdd(scratch[chunk].data, into: gradInput, image: image)
            }
        }
        for chunk in 0..<chunks {
            let partial = weightPartials[chunk]
            for i in 0..<weight.gradient.count { weight.gradient[i] += partial[i] }
            for channel in 0..<outChannels { bias.gradient[channel] += biasPartials[chunk * outChannels + channel] }
            guard let companion else { continue }
            for i in 0..<companion.weight.gradient.count { companion.weight.gradient[i] += companionPartials[chunk][i] }
            for channel in 0..<companionCount {
                companion.bias.gradient[channel] += companionBiasPartials[chunk * companionCount + channel]
            }
        }
        return gradInput
    }

    /// A 1 x 1 layer's backward for one image: the weight gradient (C, double-folded sums) added
    /// into `partial`, and W^T x gradOutput added into (or, without `accumulate`, written to)
    /// `gradInput` when given.
    func pointwiseBackward(_ input: Tensor, gradOutput: Tensor, image: Int, gradInput: Tensor?, accumulate: Bool,
                           transposedWeights: [Float], into partial: UnsafeMutablePointer<Float>, compute: ComputeSettings) {
        var totals = [Double](repeating: 0, count: outChannels * inChannels)
        hrtem_pointwise_weight_gradient(compute.level, input.plane(image, 0), inChannels, gradOutput.plane(image, 0), outChannels,
                                        input.plane, &totals)
        for i in 0..<totals.count { partial[i] += Float(totals[i]) }
        guard let gradInput else { return }
        hrtem_pointwise(compute.level, gradOutput.plane(image, 0), outChannels, gradInput.plane(image, 0), inChannels, input.plane,
                        transposedWeights, nil, accumulate ? 1 : 0, 0)
    }

    /// A 1 x 1 layer's weights as [in][out] (the data gradient is a 1 x 1 convolution by W^T).
    func transposedPointwiseWeights() -> [Float] {
        (0..<(inChannels * outChannels)).map { weight.value[($0 % outChannels) * inChannels + $0 / outChannels] }
    }

    /// The (in x k x k, H x W) matrix sgemm multiplies for one image: the image itself for a 1x1
    /// kernel, else its im2col unfolding written into `scratch` (evaluated only then: 1x1
    /// layers allocate no scratch).
    func columnMatrix(_ input: Tensor, image: Int,
                      scratch: @autoclosure () -> UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        guard kernel != 1 else { return input.plane(image, 0) }
        let columns = scratch()
        im2col(input, image: image, into: columns)
        return columns
    }

    /// columns[(ci * k + ky) * k + kx][y * w + x] = input[image, ci, y + (ky - r) d, x + (kx - r) d], 0 outside.
    func im2col(_ input: Tensor, image: Int, into columns: UnsafeMutablePointer<Float>) {
        let h = input.h, w = input.w, k = kernel, d = dilation, radius = (kernel - 1) / 2
        do {
            for row in 0..<reduction {
                let ci = row / (k * k), ky = (row / k) % k, kx = row % k
                let dy = (ky - radius) * d, dx = (kx - radius) * d
                let source = input.plane(image, ci)
                let target = columns + row * h * w
                let x0 = max(0, -dx), x1 = min(w, w - dx)
                for y in 0..<h {
                    let out = target + y * w
                    let sy = y + dy
                    if sy < 0 || sy >= h || x0 >= x1 {
                        out.update(repeating: 0, count: w)
                        continue
                    }
                    let src = source + sy * w + dx
                    for x in 0..<x0 { out[x] = 0 }
                    for x in x0..<x1 { out[x] = src[x] }
                    for x in x1..<w { out[x] = 0 }
                }
            }
        }
    }

    /// The adjoint of `im2col`: adds each column entry back onto the input pixel it came from.
    func col2imAdd(_ columns: UnsafeMutablePointer<Float>, into gradInput: Tensor, image: Int) {
        let h = gradInput.h, w = gradInput.w, k = kernel, d = dilation, radius = (kernel - 1) / 2
        do {
            for ci in 0..<inChannels {
                let target = gradInput.plane(image, ci)
                for ky in 0..<k {
                    for kx in 0..<k {
                        let dy = (ky - radius) * d, dx = (kx - radius) * d
                        let source = columns + ((ci * k + ky) * k + kx) * h * w
                        let x0 = max(0, -dx), x1 = min(w, w - dx)
                        guard x0 < x1 else { continue }
                        for y in max(0, -dy)..<min(h, h - dy) {
                            let src = source + y * w
                            let dst = target + (y + dy) * w + dx
                            for x in x0..<x1 { dst[x] += src[x] }
                        }
                    }
                }
            }
        }
    }
}

/// Batch normalization over (N, H, W) per channel, PyTorch semantics: training normalizes with
/// the batch mean and biased variance and updates the running mean and (unbiased) variance with
/// `momentum`; evaluation uses the running statistics.
public final class BatchNorm2d {
    public let channels: Int
    public let eps: Float = 1e-5
    public let momentum: Float = 0.1
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Tensor
    public let runningVariance: Tensor
    public var batchesTracked: Int64 = 0
    public let name: String

    public init(name: String, channels: Int) {
        self.name = name
        self.channels = channels
        weight = Parameter(name: "\(name).weight", shape: [channels])
        bias = Parameter(name: "\(name).bias", shape: [channels])
        runningMean = Tensor([channels])
        runningVariance = Tensor([channels])
        reset()
    }

    func reset() {
        weight.value.data.update(repeating: 1, count: channels)
        bias.value.zero()
        runningMean.zero()
        runningVariance.data.update(repeating: 1, count: channels)
        batchesTracked = 0
    }

    /// Batch statistics saved by a training forward pass for backward.
    struct Statistics {
        var mean: [Float]
        var inverseDeviation: [Float]
    }

    /// Per-channel mean and biased variance of `input` (C: float partials over blocks, folded into
    /// double per plane, summed in image order); updates the running statistics.
    func batchStatistics(_ input: Tensor, compute: ComputeSettings) -> Statistics {
        let n = input.n, c = input.c, plane = input.plane
        var sums = [Double](repeating: 0, count: n * c * 2)
        sums.withUnsafeMutableBufferPointer { buffer in
            let sums = buffer.baseAddress!
            compute.parallelFor(n * c) { planes in
                for index in planes { hrtem_moments(compute.level, input.data + index * plane, plane, sums + index * 2) }
            }
        }
        let total = Double(n * plane)
        var mean = [Float](repeating: 0, count: c), inverse = [Float](repeating: 0, count: c)
        for channel in 0..<c {
            var s: Double = 0, s2: Double = 0
            for image in 0..<n { s += sums[(image * c + channel) * 2]; s2 += sums[(image * c + channel) * 2 + 1] }
            let m = s / total
            let variance = max(0, s2 / total - m * m)
            mean[channel] = Float(m)
            inverse[channel] = Float(1 / (variance + Double(eps)).squareRoot())
            let unbiased = total > 1 ? variance * total / (total - 1) : variance
            runningMean[channel] = (1 - momentum) * runningMean[channel] + momentum * Float(m)
            runningVariance[channel] = (1 - momentum) * runningVariance[channel] + momentum * Float(unbiased)
        }
        batchesTracked += 1
        return Statistics(mean: mean, inverseDeviation: inverse)
    }

    func evaluationStatistics() -> Statistics {
        Statistics(mean: runningMean.values,
                   inverseDeviation: runningVariance.values.map { 1 / ($0 + eps).squareRoot() })
    }

    /// output = [relu](bn(input) [+ residual]), written into `output` (which may be `input` or
    /// `residual`).
    func apply(_ input: Tensor, _ statistics: Statistics, residual: Tensor?, relu: Bool, output: Tensor,
               compute: ComputeSettings) {
        let c = input.c, plane = input.plane
        var scale = [Float](repeating: 0, count: c), shift = [Float](repeating: 0, count: c)
        for channel in 0..<c {
            scale[channel] = weight.value[channel] * statistics.inverseDeviation[channel]
            shift[channel] = bias.value[channel] - statistics.mean[channel] * scale[channel]
        }
        compute.parallelFor(input.n * c) { planes in
            for index in planes {
                hrtem_affine(compute.level, input.data + index * plane, scale[index % c], shift[index % c],
                             residual.map { $0.data + index * plane }, relu ? 1 : 0, output.data + index * plane, plane)
            }
        }
    }

    /// Given the gradient at the BatchNorm output, accumulates the weight and bias gradients and
    /// writes the gradient with respect to `input` into `gradInput` (which may be `gradOutput`).
    /// With `reluOutput` (the output of a ReLU that follows, with any residual added before it),
    /// `gradOutput` is first masked by that ReLU, in place, in the same pass as the sums.
    func backward(input: Tensor, gradOutput: Tensor, statistics: Statistics, gradInput: Tensor,
                  reluOutput: Tensor? = nil, compute: ComputeSettings) {
        let n = input.n, c = input.c, plane = input.plane
        var sums = [Double](repeating: 0, count: n * c * 2)
        sums.withUnsafeMutableBufferPointer { buffer in
            let sums = buffer.baseAddress!
            compute.parallelFor(n * c) { planes in
                for index in planes {
                    hrtem_bn_backward_sums(compute.level, gradOutput.data + index * plane, reluOutput.map { $0.data + index * plane },
                                           input.data + index * plane, statistics.mean[index % c], plane, sums + index * 2)
                }
            }
        }
        let total = Float(n * plane)
        var coefficientG = [Float](repeating: 0, count: c)
        var coefficientX = [Float](repeating: 0, count: c)
        var constant = [Float](repeating: 0, count: c)
        for channel in 0..<c {
            var s: Double = 0, sx: Double = 0
            for image in 0..<n { s += sums[(image * c + channel) * 2]; sx += sums[(image * c + channel) * 2 + 1] }
            let inverse = statistics.inverseDeviation[channel]
            let sumDy = Float(s), sumDyXhat = Float(sx) * inverse
            weight.gradient[channel] += sumDyXhat
            bias.gradient[channel] += sumDy
            // dx = gamma * inv * (dy - sum(dy)/M - xhat * sum(dy xhat)/M), xhat = (x - mean) inv
            let g = weight.value[channel] * inverse
            coefficientG[channel] = g
            coefficientX[channel] = -g * inverse * sumDyXhat / total
            constant[channel] = -g * sumDy / total - coefficientX[channel] * statistics.mean[channel]
        }
        compute.parallelFor(n * c) { planes in
            for index in planes {
                let channel = index % c
                hrtem_bn_backward_apply(compute.level, gradOutput.data + index * plane, input.data + index * plane, coefficientG[channel],
                                        coefficientX[channel], constant[channel], gradInput.data + index * plane, plane)
            }
        }
    }
}

/// Sum of `count` floats: eight-lane float partial sums over blocks of 1024 (C, vectorized),
/// folded into a double, returned as float.
@inline(__always)
func blockedSum(_ p: UnsafePointer<Float>, count: Int, _ compute: ComputeSettings) -> Float {
    Float(hrtem_blocked_sum(compute.level, p, count))
}

/// 2 x 2 max-pool, stride 2. Returns the pooled tensor and, per output pixel, which of the four
/// inputs won (0...3, first maximum in row-major order, as PyTorch picks).
func maxPool2(_ input: Tensor, compute: ComputeSettings) -> (Tensor, [UInt8]) {
    let h = input.h / 2, w = input.w / 2
    let output = Tensor(uninitialized: [input.n, input.c, h, w])
    var winners = [UInt8](repeating: 0, count: output.count)
    winners.withUnsafeMutableBufferPointer { buffer in
        let winners = buffer.baseAddress!
        compute.parallelFor(input.n * input.c) { planes in
            for index in planes {
                let x = input.data + index * input.plane
                let y = output.data + index * h * w
                let win = winners + index * h * w
                for oy in 0..<h {
                    let r0 = x + 2 * oy * input.w, r1 = r0 + input.w
                    for ox in 0..<w {
                        var best = r0[2 * ox], which: UInt8 = 0
                        if r0[2 * ox + 1] > best { best = r0[2 * ox + 1]; which = 1 }
                        if r1[2 * ox] > best { best = r1[2 * ox]; which = 2 }
                        if r1[2 * ox + 1] > best { best = r1[2 * ox + 1]; which = 3 }
                        y[oy * w + ox] = best
                        win[oy * w + ox] = which
                    }
                }
            }
        }
    }
    return (output, winners)
}

/// Adds the pooled gradient onto the winning input pixels of `gradInput`.
func maxPool2BackwardAdd(_ gradOutput: Tensor, winners: [UInt8], into gradInput: Tensor, compute: ComputeSettings) {
    let h = gradOutput.h, w = gradOutput.w
    winners.withUnsafeBufferPointer { buffer in
        let winners = buffer.baseAddress!
        compute.parallelFor(gradOutput.n * gradOutput.c) { planes in
            for index in planes {
                let g = gradOutput.data + index * h * w
                let win = winners + index * h * w
                let target = gradInput.data + index * gradInput.plane
                for oy in 0..<h {
                    for ox in 0..<w {
                        let which = Int(win[oy * w + ox])
                        target[(2 * oy + which / 2) * gradInput.w + 2 * ox + which % 2] += g[oy * w + ox]
                    }
                }
            }
        }
    }
}

/// [skip, nearest-upsample x2 (low)] along channels.
func upsampleConcat(skip: Tensor, low: Tensor, compute: ComputeSettings) -> Tensor {
    precondition(low.h * 2 == skip.h && low.w * 2 == skip.w, "skip \(skip.shape) vs upsampled \(low.shape)")
    let c = skip.c + low.c
    let output = Tensor(uninitialized: [skip.n, c, skip.h, skip.w])
    let w = skip.w
    compute.parallelFor(skip.n * c) { planes in
        for index in planes {
            let image = index / c, channel = index % c
            let target = output.plane(image, channel)
            if channel < skip.c {
                target.update(from: skip.plane(image, channel), count: skip.plane)
            } else {
                let source = low.plane(image, channel - skip.c)
                for y in 0..<skip.h {
                    let row = source + (y / 2) * low.w
                    let out = target + y * w
                    for x in 0..<w { out[x] = row[x >> 1] }
                }
            }
        }
    }
    return output
}

/// Splits the gradient of `upsampleConcat`: the skip part copied into a new tensor of
/// `skipChannels`, the upsampled part summed over each 2 x 2 block (row by row, left to right)
/// into a new tensor shaped like `low`. Both are written in full, so neither needs clearing.
func upsampleConcatBackward(_ gradient: Tensor, skipChannels: Int, lowShape: [Int],
                            compute: ComputeSettings) -> (skip: Tensor, low: Tensor) {
    let skip = Tensor(uninitialized: [gradient.n, skipChannels, gradient.h, gradient.w])
    let low = Tensor(uninitialized: lowShape)
    let c = gradient.c, w = gradient.w
    compute.parallelFor(gradient.n * c) { planes in
        for index in planes {
            let image = index / c, channel = index % c
            let source = gradient.plane(image, channel)
            if channel < skipChannels {
                skip.plane(image, channel).update(from: source, count: gradient.plane)
                continue
            }
            let target = low.plane(image, channel - skipChannels)
            for y in 0..<low.h {
                let upper = source + 2 * y * w, lower = upper + w, out = target + y * low.w
                for x in 0..<low.w {
                    out[x] = ((upper[2 * x] + upper[2 * x + 1]) + lower[2 * x]) + lower[2 * x + 1]
                }
            }
        }
    }
    return (skip, low)
}

/// Mean softmax cross-entropy over every pixel of 2-or-more-class logits `[n, k, h, w]` against
/// class labels `[n * h * w]`. Returns the loss and, when asked, d loss / d logits. Per-image sums
/// (C, vector exp and ln) are added in image order.
public func softmaxCrossEntropy(logits: Tensor, labels: UnsafeBufferPointer<UInt8>,
                                gradient: Tensor? = nil, compute: ComputeSettings) -> Double {
    let n = logits.n, k = logits.c, plane = logits.plane
    precondition(labels.count == n * plane, "labels \(labels.count) for logits \(logits.shape)")
    let scale = 1 / Float(n * plane)
    var partial = [Double](repeating: 0, count: n)
    partial.withUnsafeMutableBufferPointer { partials in
        compute.parallelFor(n) { images in
            for image in images {
                partials[image] = hrtem_softmax_cross_entropy(compute.level, logits.plane(image, 0), k, plane,
                                                              labels.baseAddress! + image * plane,
                                                              gradient?.plane(image, 0), scale)
            }
        }
    }
    return partial.reduce(0, +) / Double(n * plane)
}
