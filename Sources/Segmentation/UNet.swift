import Foundation
import Micrograph

/// The shape of a residual U-Net. The study's network is `.study`: widths 4-8-16-32 with a
/// 64-channel bottleneck, 3 x 3 kernels, one input channel, two classes (130,682 parameters).
public struct UNetArchitecture: Codable, Hashable, Sendable {
    /// Output channels of each encoder block, shallowest first; the decoder mirrors them.
    public var widths: [Int]
    public var bottleneckWidth: Int
    public var kernel: Int
    public var inputChannels: Int
    public var classes: Int

    public init(widths: [Int] = [4, 8, 16, 32], bottleneckWidth: Int = 64, kernel: Int = 3,
                inputChannels: Int = 1, classes: Int = 2) {
        self.widths = widths
        self.bottleneckWidth = bottleneckWidth
        self.kernel = kernel
        self.inputChannels = inputChannels
        self.classes = classes
    }

    public static let study = UNetArchitecture()

    /// Height and width must be multiples of this.
    public var sizeMultiple: Int { 1 << widths.count }
}

/// conv(k) -> BN -> ReLU -> conv(k) -> BN, plus a 1 x 1 projection of the block input, then ReLU
/// (the study's `conv1`, `bn1`, `conv2`, `bn2`, `conv_add`).
/// Not Sendable: a training pass keeps state in it (see `ResidualUNet`).
public final class ResidualBlock {
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let conv2: Conv2d
    public let bn2: BatchNorm2d
    public let convAdd: Conv2d

    /// What a training forward pass keeps for backward.
    struct Saved {
        var input: Tensor
        var conv1: Tensor
        var hidden: Tensor
        var conv2: Tensor
        var output: Tensor
        var statistics1: BatchNorm2d.Statistics
        var statistics2: BatchNorm2d.Statistics
    }
    var saved: Saved?

    init(name: String, inChannels: Int, outChannels: Int, kernel: Int) {
        conv1 = Conv2d(name: "\(name).conv1", inChannels: inChannels, outChannels: outChannels, kernel: kernel)
        bn1 = BatchNorm2d(name: "\(name).bn1", channels: outChannels)
        conv2 = Conv2d(name: "\(name).conv2", inChannels: outChannels, outChannels: outChannels, kernel: kernel)
        bn2 = BatchNorm2d(name: "\(name).bn2", channels: outChannels)
        convAdd = Conv2d(name: "\(name).conv_add", inChannels: inChannels, outChannels: outChannels, kernel: 1)
    }

    var parameters: [Parameter] {
        [conv1.weight, conv1.bias, bn1.weight, bn1.bias, conv2.weight, conv2.bias, bn2.weight, bn2.bias,
         convAdd.weight, convAdd.bias]
    }

    func forward(_ input: Tensor, training: Bool, compute: ComputeSettings) -> Tensor {
        if !training { return inferenceForward(input, compute: compute) }
        let tag = " \(input.c)->\(conv1.outChannels) @\(input.h)"
        // conv1 and the 1 x 1 projection read the same input: one banded pass computes both.
        let a: Tensor, output: Tensor
        if conv1.forwardIsDirect {
            a = Tensor(uninitialized: [input.n, conv1.outChannels, input.h, input.w])
            output = Tensor(uninitialized: [input.n, convAdd.outChannels, input.h, input.w])
            compute.measure("conv1+convAdd forward" + tag) {
                conv1.forwardDirect(input, into: a, companion: convAdd, companionOutput: output, compute: compute)
            }
        } else {
            a = compute.measure("conv1 forward" + tag) { conv1.forward(input, compute: compute) }
            output = compute.measure("convAdd forward" + tag) { convAdd.forward(input, compute: compute) }
        }
        let statistics1 = compute.measure("bn statistics" + tag) { bn1.batchStatistics(a, compute: compute) }
        let hidden = Tensor(uninitialized: a.shape)
        compute.measure("bn apply" + tag) {
            bn1.apply(a, statistics1, residual: nil, relu: true, output: hidden, compute: compute)
        }
        let b = compute.measure("conv2 forward" + tag) { conv2.forward(hidden, compute: compute) }
        let statistics2 = compute.measure("bn statistics" + tag) { bn2.batchStatistics(b, compute: compute) }
        compute.measure("bn apply" + tag) {
            bn2.apply(b, statistics2, residual: output, relu: true, output: output, compute: compute)
        }
        saved = training ? Saved(input: input, conv1: a, hidden: hidden, conv2: b, output: output,
                                 statistics1: statistics1, statistics2: statistics2) : nil
        return output
    }

    /// Backpropagates `gradOutput` (consumed: overwritten in place); returns the input gradient,
    /// or nil for the first block, whose input is the image.
    func backward(_ gradOutput: Tensor, needInputGradient: Bool, compute: ComputeSettings) -> Tensor? {
        guard let saved else { preconditionFailure("backward without a training forward pass") }
        let tag = " \(saved.input.c)->\(conv1.outChannels) @\(saved.input.h)"
        // bn2's backward masks gradOutput by the block's final ReLU in its first pass; the masked
        // gradient is also the 1 x 1 projection's, whose backward rides in conv1's.
        let gradB = Tensor(uninitialized: saved.conv2.shape)
        compute.measure("bn backward" + tag) {
            bn2.backward(input: saved.conv2, gradOutput: gradOutput, statistics: saved.statistics2, gradInput: gradB,
                         reluOutput: saved.output, compute: compute)
        }
        let gradHidden = compute.measure("conv2 backward" + tag) {
            conv2.backward(input: saved.hidden, gradOutput: gradB, compute: compute)!
        }
        compute.measure("bn backward" + tag) {
            bn1.backward(input: saved.conv1, gradOutput: gradHidden, statistics: saved.statistics1, gradInput: gradHidden,
                         reluOutput: saved.hidden, compute: compute)
        }
        let gradInput = compute.measure("conv1+convAdd backward" + tag) {
            conv1.backward(input: saved.input, gradOutput: gradHidden, needInputGradient: needInputGradient,
                           companion: convAdd, companionGradient: gradOutput, compute: compute)
        }
        self.saved = nil
        return gradInput
    }
}

/// The study's residual U-Net, NCHW float32, on the CPU.
/// Input `[n, inputChannels, h, w]` with h and w multiples of `architecture.sizeMultiple`;
/// output logits `[n, classes, h, w]`. Module names match the study's PyTorch state_dict:
/// `downs.i.*`, `bottleneck.*`, `ups.i.*` (deepest first), `final_conv.*`.
/// Not Sendable: its weights, running statistics and what a training pass saves for backward
/// change as it runs, so one thread of control owns a network (parallel runs build their own).
public final class ResidualUNet {
    public let architecture: UNetArchitecture
    /// How this network's layers run (threads, kernels); its own, so networks in one process
    /// do not share settings.
    public var compute: ComputeSettings
    public let downs: [ResidualBlock]
    public let bottleneck: ResidualBlock
    public let ups: [ResidualBlock]
    public let finalConv: Conv2d

    private var savedSkips: [Tensor] = []
    private var savedWinners: [[UInt8]] = []
    private var savedPooledShapes: [[Int]] = []
    private var savedLowShapes: [[Int]] = []
    private var savedFinalInput: Tensor?

    /// A network with Kaiming-normal convolution weights drawn from `seed`.
    public init(architecture: UNetArchitecture = .study, seed: UInt64 = 0, compute: ComputeSettings = ComputeSettings()) {
        self.architecture = architecture
        self.compute = compute
        let k = architecture.kernel
        var downs: [ResidualBlock] = []
        var channels = architecture.inputChannels
        for (index, width) in architecture.widths.enumerated() {
            downs.append(ResidualBlock(name: "downs.\(index)", inChannels: channels, outChannels: width, kernel: k))
            channels = width
        }
        self.downs = downs
        bottleneck = ResidualBlock(name: "bottleneck", inChannels: channels, outChannels: architecture.bottleneckWidth, kernel: k)
        channels = architecture.bottleneckWidth
        var ups: [ResidualBlock] = []
        for (index, width) in architecture.widths.reversed().enumerated() {
            ups.append(ResidualBlock(name: "ups.\(index)", inChannels: width + channels, outChannels: width, kernel: k))
            channels = width
        }
        self.ups = ups
        finalConv = Conv2d(name: "final_conv", inChannels: channels, outChannels: architecture.classes, kernel: 1)
        var random = SplitMix64(seed: seed)
        for conv in convolutions { conv.initialize(&random) }
    }

    var blocks: [ResidualBlock] { downs + [bottleneck] + ups }
    var convolutions: [Conv2d] { blocks.flatMap { [$0.conv1, $0.conv2, $0.convAdd] } + [finalConv] }
    var batchNorms: [BatchNorm2d] { blocks.flatMap { [$0.bn1, $0.bn2] } }

    /// Every trainable parameter, in a fixed order.
    public var parameters: [Parameter] { blocks.flatMap(\.parameters) + [finalConv.weight, finalConv.bias] }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// Logits for `input`. `training` uses batch statistics (updating the running ones) and
    /// keeps what `backward` needs; evaluation uses running statistics and keeps nothing.
    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        precondition(input.c == architecture.inputChannels, "input has \(input.c) channels, the network takes \(architecture.inputChannels)")
        precondition(input.h % architecture.sizeMultiple == 0 && input.w % architecture.sizeMultiple == 0,
                     "input \(input.h) x \(input.w) is not a multiple of \(architecture.sizeMultiple)")
        var skips: [Tensor] = []
        var winners: [[UInt8]] = []
        var x = input
        for block in downs {
            let skip = block.forward(x, training: training, compute: compute)
            skips.append(skip)
            let (pooled, won) = compute.measure("maxpool forward @\(skip.h)") { maxPool2(skip, compute: compute) }
            if training { winners.append(won); savedPooledShapes.append(pooled.shape) }
            x = pooled
        }
        x = bottleneck.forward(x, training: training, compute: compute)
        for (index, block) in ups.enumerated() {
            let skip = skips[skips.count - 1 - index]
            guard training else {
                x = block.inferenceForward(skip, upsampled: x, compute: compute)
                continue
            }
            savedLowShapes.append(x.shape)
            let joined = compute.measure("upsample+concat forward @\(skip.h)") {
                upsampleConcat(skip: skip, low: x, compute: compute)
            }
            x = block.forward(joined, training: training, compute: compute)
        }
        if training {
            savedSkips = skips
            savedWinners = winners
            savedFinalInput = x
        }
        return compute.measure("final conv forward") { finalConv.forward(x, compute: compute) }
    }

    /// Accumulates parameter gradients for d loss / d logits from the last training forward pass.
    public func backward(_ gradLogits: Tensor) {
        guard let finalInput = savedFinalInput else { preconditionFailure("backward without a training forward pass") }
        var grad = compute.measure("final conv backward") {
            finalConv.backward(input: finalInput, gradOutput: gradLogits, compute: compute)!
        }
        var skipGradients = [Tensor?](repeating: nil, count: savedSkips.count)
        for (index, block) in ups.enumerated().reversed() {
            let gradConcat = block.backward(grad, needInputGradient: true, compute: compute)!
            let level = savedSkips.count - 1 - index
            (skipGradients[level], grad) = compute.measure("upsample+concat backward @\(gradConcat.h)") {
                upsampleConcatBackward(gradConcat, skipChannels: savedSkips[level].c, lowShape: savedLowShapes[index],
                                       compute: compute)
            }
        }
        grad = bottleneck.backward(grad, needInputGradient: true, compute: compute)!
        for level in stride(from: downs.count - 1, through: 0, by: -1) {
            let gradSkip = skipGradients[level]!
            skipGradients[level] = nil
            compute.measure("maxpool backward @\(grad.h * 2)") {
                maxPool2BackwardAdd(grad, winners: savedWinners[level], into: gradSkip, compute: compute)
            }
            if let next = downs[level].backward(gradSkip, needInputGradient: level > 0, compute: compute) { grad = next }
        }
        savedSkips = []
        savedWinners = []
        savedPooledShapes = []
        savedLowShapes = []
        savedFinalInput = nil
    }

    public func zeroGradients() { for parameter in parameters { parameter.gradient.zero() } }
}
