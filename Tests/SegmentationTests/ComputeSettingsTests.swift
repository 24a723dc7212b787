import Foundation
import Micrograph
@testable import Segmentation
import XCTest

/// One thread, the best kernels: what the layer tests run with.
let serial = ComputeSettings()

final class ComputeSettingsTests: XCTestCase {
    /// Weights after a few training steps of a small network with `threads` threads.
    private func trainedWeights(threads: Int) -> [Float] {
        let network = ResidualUNet(architecture: UNetArchitecture(widths: [3, 4], bottleneckWidth: 5), seed: 3,
                                   compute: ComputeSettings(threads: threads))
        let step = TrainingStep(network: network, learningRate: 1e-2)
        var random = SplitMix64(seed: 4)
        let input = Tensor([6, 1, 16, 16])
        for i in 0..<input.count { input[i] = Float(random.nextGaussian()) }
        let labels = (0..<(6 * 16 * 16)).map { _ in UInt8(random.next() % 2) }
        for _ in 0..<3 { step.step(input: input, labels: labels) }
        return network.parameters.flatMap(\.value.values)
    }

    /// Networks with different thread counts trained at the same time in one process each get
    /// exactly what they get alone: the settings are the network's own, not the process's.
    func testNetworksTrainedSideBySideKeepTheirOwnThreadCounts() {
        let alone = [1, 3].map { trainedWeights(threads: $0) }
        XCTAssertNotEqual(alone[0], alone[1], "the chunking by thread count should show in the sums")
        let sideBySide = Locked([[Float]](repeating: [], count: 2))
        concurrentPerform(iterations: 2) { index in
            let weights = trainedWeights(threads: [1, 3][index])
            sideBySide.withLock { $0[index] = weights }
        }
        XCTAssertEqual(sideBySide.value[0], alone[0])
        XCTAssertEqual(sideBySide.value[1], alone[1])
    }

    func testSettingsStayWithinWhatTheMachineRuns() {
        XCTAssertEqual(ComputeSettings(threads: 0).threads, 1)
        var settings = ComputeSettings(instructionSet: .avx512)
        XCTAssertEqual(settings.instructionSet, min(.avx512, KernelInstructionSet.best))
        settings.instructionSet = .generic
        XCTAssertEqual(settings.instructionSet, .generic)
        XCTAssertEqual(KernelInstructionSet.available.first, .generic)
        XCTAssertEqual(KernelInstructionSet(name: "avx2"), .avx2)
        XCTAssertNil(KernelInstructionSet(name: "sse9"))
    }

    /// A profile given to one network records that network's layers and nothing of another's.
    func testProfileRecordsOnlyItsOwnNetwork() {
        let profile = OperationProfile()
        let architecture = UNetArchitecture(widths: [2], bottleneckWidth: 3)
        let profiled = ResidualUNet(architecture: architecture, seed: 1, compute: ComputeSettings(profile: profile))
        let plain = ResidualUNet(architecture: architecture, seed: 1)
        let input = Tensor([1, 1, 8, 8])
        _ = plain.forward(input, training: true)
        XCTAssertTrue(profile.entries.isEmpty)
        _ = profiled.forward(input, training: true)
        let names = profile.entries.map(\.name)
        XCTAssertTrue(names.contains("final conv forward"), "\(names)")
        XCTAssertEqual(profile.entries.first { $0.name == "final conv forward" }?.calls, 1)
        profile.reset()
        XCTAssertTrue(profile.entries.isEmpty)
    }
}
