import Foundation
import Micrograph
@testable import Segmentation
import TestSupport
import XCTest

/// hrtem's training steps against PyTorch's: the same initial weights (written by hrtem as
/// safetensors, loaded by `Benchmarks/peers/torch_train_steps.py`) and the same batches (a fixed
/// order written to a file both read, no random augmentation), 20 steps of the study's training
/// (training-mode forward with BatchNorm batch statistics, mean cross-entropy, backward, Adam at
/// the study's learning rate) must give the same losses and the same weights, BatchNorm running
/// statistics and batch counters.
final class TorchTrainingParityTests: XCTestCase {
    static let steps = 20
    static let batchSize = 4
    static let side = 32
    static let learningRate = 1e-4

    /// Tolerances, float32 on both sides: summation orders differ (banded direct kernels here,
    /// PyTorch's im2col/mkldnn there), so agreement is to rounding, not to the bit.
    /// - losses: relative 1e-4.
    /// - weights: for each tensor, the two runs' updates (final - initial) differ by at most 2% in
    ///   L2 norm, and no element differs by more than 5% of the tensor's largest update (Adam
    ///   moves each weight by about the learning rate a step, 2e-3 over the run, and divides by
    ///   the gradient's own scale, so an element whose gradient is near zero amplifies rounding).
    /// - The biases of convolutions followed by BatchNorm (`conv1.bias`, `conv2.bias`) are
    ///   exempt from the 2% rule: BatchNorm subtracts the batch mean, so their exact gradient is
    ///   zero and what either side computes is rounding noise that Adam, which divides by the
    ///   gradient's own scale, turns into steps of about the learning rate in an arbitrary
    ///   direction. They are held to Adam's bound instead (|difference| <= 2 x lr x steps) and
    ///   have no effect on any output. BatchNorm's running means follow the outputs of those
    ///   convolutions, bias included, so they are held to that bound plus 1e-3 of their largest
    ///   magnitude (at least 1); running variances (which a bias does not move) to 1e-3 of theirs.
    static let lossTolerance = 1e-4
    static let updateTolerance: Float = 0.02
    static let elementTolerance: Float = 0.05
    static let runningStatisticTolerance: Float = 1e-3
    static func biasNoiseBound(_ steps: Int) -> Float { Float(2 * learningRate) * Float(steps) }

    func testTwentyStepsMatchPyTorch() throws {
        try compare(.crossEntropy, steps: Self.steps)
    }

    /// The other objectives (`--loss`), 10 steps each: PyTorch's autograd of the same formulas
    /// checks hrtem's hand-written gradients inside the whole network.
    func testOtherObjectivesMatchPyTorch() throws {
        for loss in TrainingLoss.allCases where loss != .crossEntropy {
            try compare(loss, steps: 10)
        }
    }

    private func compare(_ loss: TrainingLoss, steps: Int) throws {
        guard let python = torchPeerPython else {
            throw XCTSkip("no Python imports torch (set HRTEM_TORCH_PYTHON or run `make peers`): training parity with PyTorch skipped")
        }
        let folder = try makeTemporaryFolder("hrtem-torch-training")
        defer { try? FileManager.default.removeItem(at: folder) }
        let datasetFolder = folder.appendingPathComponent("discs")
        try makeDiscDataset(in: datasetFolder, count: 24, side: Self.side, seed: 11)
        let dataset = try PatchDataset.load(from: datasetFolder)

        let compute = ComputeSettings(threads: 1)
        let network = ResidualUNet(architecture: .study, seed: 962, compute: compute)
        let initial = network.stateTensors()
        let initialFile = folder.appendingPathComponent("initial.safetensors")
        try network.save(to: initialFile)

        // A fixed batch order: step k takes patches (4k + i) mod 24 under dihedral transform (k + i) mod 8.
        var batchTensors: [SafetensorsTensor] = []
        var batches: [(Tensor, [UInt8])] = []
        for step in 0..<steps {
            let samples = (0..<Self.batchSize).map { Sample(patch: (step * Self.batchSize + $0) % dataset.count, transform: (step + $0) % 8) }
            let (input, labels) = makeBatch(dataset, samples[...], rotate: false, noise: .none, generator: nil, compute: compute)
            batches.append((input, labels))
            batchTensors.append(SafetensorsTensor(name: "input.\(step)", shape: input.shape, float32: input.values))
            batchTensors.append(SafetensorsTensor(name: "labels.\(step)", dtype: .U8, shape: [Self.batchSize, Self.side, Self.side], bytes: labels))
        }
        let batchFile = folder.appendingPathComponent("batches.safetensors")
        try writeSafetensors(SafetensorsFile(tensors: batchTensors), to: batchFile)

        let stepper = TrainingStep(network: network, learningRate: Self.learningRate)
        stepper.loss = loss
        var peerArguments = [loss.rawValue]
        if loss == .weightedCrossEntropy {
            stepper.classWeights = balancedClassWeights(batches.flatMap(\.1), classes: 2)
            peerArguments.append(stepper.classWeights.map { String($0) }.joined(separator: ","))
        }
        let ours = batches.map { stepper.step(input: $0.0, labels: $0.1).loss }

        let torchFile = folder.appendingPathComponent("torch.safetensors")
        let script = packageRoot.appendingPathComponent("Benchmarks/peers/torch_train_steps.py")
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                    [python, script.path, initialFile.path, batchFile.path, String(Self.learningRate), torchFile.path] + peerArguments)
        XCTAssertEqual(result.status, 0, result.standardError)
        let line = try XCTUnwrap(result.standardOutput.split(separator: "\n").last)
        let peer = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let theirs = try XCTUnwrap(peer["losses"] as? [Double])
        XCTAssertEqual(theirs.count, steps)

        var worstLoss = 0.0
        for (step, (a, b)) in zip(ours, theirs).enumerated() {
            let relative = abs(a - b) / max(abs(b), 1e-12)
            worstLoss = max(worstLoss, relative)
            XCTAssertLessThanOrEqual(relative, Self.lossTolerance, "\(loss.rawValue) step \(step): loss \(a) here, \(b) in PyTorch")
        }
        if loss == .crossEntropy { XCTAssertLessThan(ours.last!, ours.first!, "20 steps on the same discs lower the loss") }

        let peerState = try readSafetensors(from: torchFile)
        let start = Dictionary(uniqueKeysWithValues: initial.map { ($0.name, $0) })
        var worstUpdate: (ratio: Float, name: String) = (0, ""), worstElement: (ratio: Float, name: String) = (0, "")
        var worstNoise: Float = 0, worstMean: Float = 0, worstVariance: Float = 0
        for tensor in network.stateTensors() {
            let other = try XCTUnwrap(peerState[tensor.name], "PyTorch's state lacks \(tensor.name)")
            XCTAssertEqual(other.shape, tensor.shape, tensor.name)
            if tensor.dtype == .I64 {
                XCTAssertEqual(other.int64Value, tensor.int64Value, tensor.name)
                XCTAssertEqual(tensor.int64Value, Int64(steps), tensor.name)
                continue
            }
            let mine = try XCTUnwrap(tensor.float32Values), peers = try XCTUnwrap(other.float32Values)
            let difference = zip(mine, peers).map { abs($0 - $1) }.max() ?? 0
            if tensor.name.hasSuffix("running_mean") {
                let relative = max(0, difference - Self.biasNoiseBound(steps)) / max(peers.map(abs).max() ?? 1, 1)
                worstMean = max(worstMean, difference)
                XCTAssertLessThanOrEqual(relative, Self.runningStatisticTolerance, "\(tensor.name): differs by \(difference)")
            } else if tensor.name.hasSuffix("running_var") {
                let relative = difference / max(peers.map(abs).max() ?? 1, 1)
                worstVariance = max(worstVariance, relative)
                XCTAssertLessThanOrEqual(relative, Self.runningStatisticTolerance, tensor.name)
            } else if tensor.name.hasSuffix("conv1.bias") || tensor.name.hasSuffix("conv2.bias") {
                worstNoise = max(worstNoise, difference)
                XCTAssertLessThanOrEqual(difference, Self.biasNoiseBound(steps), tensor.name)
            } else {
                let before = try XCTUnwrap(start[tensor.name]?.float32Values)
                let ourUpdate = zip(mine, before).map { $0 - $1 }, theirUpdate = zip(peers, before).map { $0 - $1 }
                let norm = theirUpdate.reduce(0) { $0 + $1 * $1 }.squareRoot()
                let gap = zip(ourUpdate, theirUpdate).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
                let largest = theirUpdate.map(abs).max() ?? 0
                let update = gap / max(norm, 1e-12), element = difference / max(largest, 1e-12)
                if update > worstUpdate.ratio { worstUpdate = (update, tensor.name) }
                if element > worstElement.ratio { worstElement = (element, tensor.name) }
                XCTAssertLessThanOrEqual(update, Self.updateTolerance, "\(loss.rawValue) \(tensor.name): updates differ by \(gap) of \(norm) (L2)")
                XCTAssertLessThanOrEqual(element, Self.elementTolerance,
                                         "\(tensor.name): an element differs by \(difference); the largest update is \(largest)")
            }
        }
        print("""
        training parity with PyTorch \(peer["torch"] ?? "?"), \(loss.rawValue), \(steps) steps, batch \(Self.batchSize) of \(Self.side) x \(Self.side), lr \(Self.learningRate):
          loss: tolerance \(Self.lossTolerance) relative, worst \(worstLoss) (first \(ours.first!), last \(ours.last!))
          weight updates (L2, relative): tolerance \(Self.updateTolerance), worst \(worstUpdate.ratio) (\(worstUpdate.name))
          weight elements (of the largest update): tolerance \(Self.elementTolerance), worst \(worstElement.ratio) (\(worstElement.name))
          biases before BatchNorm (zero exact gradient): bound \(Self.biasNoiseBound(steps)), worst \(worstNoise)
          running means: bound \(Self.biasNoiseBound(steps)) + \(Self.runningStatisticTolerance) relative, worst \(worstMean) absolute
          running variances (relative): tolerance \(Self.runningStatisticTolerance), worst \(worstVariance)
        """)
    }
}
