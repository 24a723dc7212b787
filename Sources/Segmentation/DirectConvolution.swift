import CKernels
import Foundation

/// Direct convolution for the network's thin layers (few input and output channels at full
/// resolution), where im2col would write `in x k x k` copies of each plane and sgemm's packing
/// would move them again. A band of rows is copied into a zero-bordered scratch that stays in
/// cache (so no tap needs a bounds test), then every output row of the band is computed 16 to 64
/// pixels at a time for four output channels at once, the accumulators held in SIMD registers
/// across all input channels and taps.
/// Same results as the im2col path up to float rounding order; the order is fixed, so results
/// are deterministic.
extension Conv2d {
    /// Whether this layer's backward takes the direct path: few multiply-adds per pixel (see
    /// `ComputeSettings.directLimit`).
    func usesDirectKernel(_ compute: ComputeSettings) -> Bool {
        kernel > 1 && kernel <= 7 && inChannels * outChannels <= compute.directLimit
    }

    /// Output channels computed per pass.
    static let channelBlock = 4

    /// Weights rearranged as `[outBlock][in][k * k][channelBlock]` (zero beyond `outCount`), the
    /// order the kernel reads them; `weight(o, i, ky, kx)` gives the tap in convolution order.
    static func packWeights(outCount: Int, inCount: Int, kernel k: Int,
                            weight: (Int, Int, Int, Int) -> Float) -> [Float] {
        let block = channelBlock, blocks = (outCount + block - 1) / block
        var packed = [Float](repeating: 0, count: blocks * inCount * k * k * block)
        for o in 0..<outCount {
            for i in 0..<inCount {
                for ky in 0..<k {
                    for kx in 0..<k {
                        packed[(((o / block) * inCount + i) * k * k + ky * k + kx) * block + o % block] = weight(o, i, ky, kx)
                    }
                }
            }
        }
        return packed
    }

    /// This layer's weights packed for `hrtem_conv_image`.
    func packedForwardWeights(scales: [Float]? = nil) -> [Float] {
        let w = weight.value.data, cin = inChannels, k = kernel
        return Conv2d.packWeights(outCount: outChannels, inCount: cin, kernel: k) { co, ci, ky, kx in
            (scales?[co] ?? 1) * w[((co * cin + ci) * k + ky) * k + kx]
        }
    }

    /// The mirrored transposed weights (the input gradient is the convolution of the output
    /// gradient by them), packed.
    func packedBackwardWeights() -> [Float] {
        let w = weight.value.data, cin = inChannels, k = kernel
        return Conv2d.packWeights(outCount: cin, inCount: outChannels, kernel: k) { ci, co, ky, kx in
            w[((co * cin + ci) * k + (k - 1 - ky)) * k + (k - 1 - kx)]
        }
    }

    /// Whether the forward pass runs the banded direct kernel: every k x k layer up to 7 x 7
    /// (faster than im2col + sgemm at every width of the study's network); `usesDirectKernel`
    /// decides only the backward path.
    var forwardIsDirect: Bool { kernel > 1 && kernel <= 7 }

    /// The direct forward of a batch, in C (`hrtem_conv_image`, band by band):
    /// output[o] (+)= scale[o] (conv(input)[o] + bias[o]) + shift[o], ReLU'd when `relu` (scale
    /// and shift nil mean 1 and 0). With `companion`, a 1 x 1 layer over the same input, its plain
    /// output is written into `companionOutput` from the same pass, so the input is read once.
    /// With `upsampled`, the layer's input is [input, upsample x2 (upsampled)] along channels (a
    /// U-Net's skip and deeper level), read band by band without being built.
    func forwardDirect(_ input: Tensor, upsampled low: Tensor? = nil, scale: [Float]? = nil, shift: [Float]? = nil,
                       accumulate: Bool = false, relu: Bool = false, into output: Tensor, companion: Conv2d? = nil,
                       companionOutput: Tensor? = nil, compute: ComputeSettings) {
        precondition(forwardIsDirect && input.c + (low?.c ?? 0) == inChannels && output.c == outChannels
                     && output.plane == input.plane && (low.map { $0.h * 2 == input.h && $0.w * 2 == input.w } ?? true),
                     "conv \(weight.name): \(input.shape) + \(low?.shape ?? []) -> \(output.shape)")
        let cin = inChannels
        let packed = packedForwardWeights(scales: scale)
        let biases = (0..<outChannels).map { (scale?[$0] ?? 1) * bias.value[$0] + (shift?[$0] ?? 0) }
        var companionPacked: [Float] = []
        if let companion {
            precondition(companion.kernel == 1 && companion.inChannels == cin && companionOutput?.c == companion.outChannels,
                         "companion \(companion.weight.name) of \(weight.name)")
            let w = companion.weight.value.data
            companionPacked = Conv2d.packWeights(outCount: companion.outChannels, inCount: cin, kernel: 1) { co, ci, _, _ in
                w[co * cin + ci]
            }
        }
        packed.withUnsafeBufferPointer { packed in
            biases.withUnsafeBufferPointer { biases in
                companionPacked.withUnsafeBufferPointer { companionPacked in
                    compute.parallelChunks(input.n) { _, images in
                        for image in images {
                            hrtem_conv_image(compute.level, input.plane(image, 0), cin, low?.plane(image, 0), low?.c ?? 0,
                                             output.plane(image, 0), outChannels, input.h, input.w,
                                             kernel, dilation, packed.baseAddress!, biases.baseAddress!, accumulate ? 1 : 0,
                                             relu ? 1 : 0, companion == nil ? nil : companionPacked.baseAddress,
                                             companion?.bias.value.data, companionOutput?.plane(image, 0),
                                             companion?.outChannels ?? 0)
                        }
                    }
                }
            }
        }
    }

    /// partial += this image's weight gradient; its input gradient added into (or, without
    /// `accumulate`, written to) gradInput[image] when `packedBackward` and `gradInput` are given.
    /// With `companionGradient` (a 1 x 1 layer's output gradient over the same input),
    /// companionInto += that layer's weight gradient and its input gradient (by
    /// `companionBackward`, its transposed weights) is added into gradInput[image] too. One
    /// banded pass in C (`hrtem_conv_backward_image`).
    func directBackward(input: Tensor, gradOutput: Tensor, image: Int, packedBackward: UnsafePointer<Float>?,
                        gradInput: Tensor?, accumulate: Bool, into partial: UnsafeMutablePointer<Float>,
                        companionGradient: Tensor? = nil, companionBackward: UnsafePointer<Float>? = nil,
                        companionInto companionPartial: UnsafeMutablePointer<Float>? = nil, compute: ComputeSettings) {
        var totals = [Double](repeating: 0, count: outChannels * inChannels * kernel * kernel)
        let companionCount = companionGradient?.c ?? 0
        var companionTotals = [Double](repeating: 0, count: companionCount * inChannels)
        hrtem_conv_backward_image(compute.level, input.plane(image, 0), inChannels, gradOutput.plane(image, 0), outChannels, input.h,
                                  input.w, kernel, dilation, &totals, packedBackward, gradInput?.plane(image, 0),
                                  accumulate ? 1 : 0, companionGradient?.plane(image, 0), companionCount,
                                  &companionTotals, companionBackward)
        if let companionPartial {
            for i in 0..<companionTotals.count { companionPartial[i] += Float(companionTotals[i]) }
        }
        for i in 0..<totals.count { partial[i] += Float(totals[i]) }
    }
}

/// Dot product with eight-lane float partial sums (a fixed order, so deterministic).
@inline(__always)
func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    var accumulator = SIMD8<Float>()
    var i = 0
    let rawA = UnsafeRawPointer(a), rawB = UnsafeRawPointer(b)
    while i + 8 <= count {
        accumulator += rawA.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            * rawB.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    var total = accumulator.sum()
    while i < count { total += a[i] * b[i]; i += 1 }
    return total
}

extension Conv2d {
    /// Evaluation-mode convolution with a following per-channel affine map folded in:
    /// `output[o] (+)= scale[o] * conv(input)[o] + shift[o]` (conv bias included), then ReLU when
    /// `relu`. With `accumulate` the result is added to what `output` already holds before the
    /// ReLU (the residual sum), else `output` is overwritten. `scale`/`shift` nil mean 1 and 0.
    func forwardFolded(_ input: Tensor, scale: [Float]?, shift: [Float]?, into output: Tensor,
                       accumulate: Bool, relu: Bool, compute: ComputeSettings) {
        precondition(input.c == inChannels && output.c == outChannels && output.plane == input.plane,
                     "conv \(weight.name): \(input.shape) -> \(output.shape)")
        let cin = inChannels, w = weight.value.data, plane = input.plane
        let scales = scale ?? [Float](repeating: 1, count: outChannels)
        let biases = (0..<outChannels).map { scales[$0] * bias.value[$0] + (shift?[$0] ?? 0) }
        let chunks = compute.chunkCount(input.n)
        if forwardIsDirect {
            forwardDirect(input, scale: scale, shift: shift, accumulate: accumulate, relu: relu, into: output, compute: compute)
            return
        }
        let scaled = (0..<weight.value.count).map { scales[$0 / reduction] * w[$0] }
        if kernel == 1 {
            compute.parallelChunks(input.n) { _, images in
                for image in images {
                    hrtem_pointwise(compute.level, input.plane(image, 0), cin, output.plane(image, 0), outChannels, plane, scaled, biases,
                                    accumulate ? 1 : 0, relu ? 1 : 0)
                }
            }
            return
        }
        let scratch = (0..<chunks).map { _ in Tensor(uninitialized: [reduction, plane]) }
        scaled.withUnsafeBufferPointer { scaled in
            compute.parallelChunks(input.n) { chunk, images in
                for image in images {
                    let out = output.plane(image, 0)
                    for channel in 0..<outChannels {
                        let target = out + channel * plane, b = biases[channel]
                        if accumulate { for i in 0..<plane { target[i] += b } }
                        else { target.update(repeating: b, count: plane) }
                    }
                    let columns = columnMatrix(input, image: image, scratch: scratch[chunk].data)
                    sgemm(transA: false, transB: false, m: outChannels, n: plane, k: reduction,
                          a: scaled.baseAddress!, lda: reduction, b: columns, ldb: plane, beta: 1, c: out, ldc: plane)
                    if relu { for i in 0..<(outChannels * plane) { out[i] = max(0, out[i]) } }
                }
            }
        }
    }
}

extension BatchNorm2d {
    /// The evaluation-mode map as `scale * x + shift` per channel.
    func evaluationAffine() -> (scale: [Float], shift: [Float]) {
        let statistics = evaluationStatistics()
        let scale = (0..<channels).map { weight.value[$0] * statistics.inverseDeviation[$0] }
        let shift = (0..<channels).map { bias.value[$0] - statistics.mean[$0] * scale[$0] }
        return (scale, shift)
    }
}

extension ResidualBlock {
    /// Evaluation forward with each BatchNorm folded into the convolution before it and the ReLUs
    /// and residual sum fused into the convolution's store: two passes instead of six. With
    /// `upsampled`, the block's input is [input, upsample x2 (upsampled)], never built when the
    /// 3 x 3 layer runs direct. Drops what a training pass kept.
    func inferenceForward(_ input: Tensor, upsampled low: Tensor? = nil, compute: ComputeSettings) -> Tensor {
        saved = nil
        let (scale1, shift1) = bn1.evaluationAffine(), (scale2, shift2) = bn2.evaluationAffine()
        let hidden = Tensor(uninitialized: [input.n, conv1.outChannels, input.h, input.w])
        let output = Tensor(uninitialized: [input.n, convAdd.outChannels, input.h, input.w])
        if conv1.forwardIsDirect {
            conv1.forwardDirect(input, upsampled: low, scale: scale1, shift: shift1, relu: true, into: hidden,
                                companion: convAdd, companionOutput: output, compute: compute)
        } else {
            let joined = low.map { upsampleConcat(skip: input, low: $0, compute: compute) } ?? input
            conv1.forwardFolded(joined, scale: scale1, shift: shift1, into: hidden, accumulate: false, relu: true, compute: compute)
            convAdd.forwardFolded(joined, scale: nil, shift: nil, into: output, accumulate: false, relu: false, compute: compute)
        }
        conv2.forwardFolded(hidden, scale: scale2, shift: shift2, into: output, accumulate: true, relu: true, compute: compute)
        return output
    }
}
