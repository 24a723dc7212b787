import Foundation
import Micrograph
@testable import Segmentation
import TestSupport
import XCTest

/// The study's own trained weights, run by hrtem, against the logits PyTorch computed
/// (../shared/reference/study_unet_parity.json).
final class ReferenceParityTests: XCTestCase {
    func testStudyArchitectureHas130682Parameters() {
        XCTAssertEqual(ResidualUNet(architecture: .study).parameterCount, 130_682)
    }

    func testStudyWeightsReproducePyTorchLogits() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let oracle = try JSONSerialization.jsonObject(
            with: Data(contentsOf: reference.appendingPathComponent("study_unet_parity.json"))) as! [String: Any]
        let weightsURL = reference.appendingPathComponent("study_unet_2p2nm_fold0.safetensors")
        let network = try ResidualUNet.load(from: weightsURL)
        XCTAssertEqual(network.architecture, .study)
        // Every tensor of the study's state_dict maps 1:1 onto ours, and back.
        let file = try readSafetensors(from: weightsURL)
        XCTAssertEqual(Set(file.tensors.map(\.name)), Set(network.stateTensors().map(\.name)))
        XCTAssertEqual(file["downs.0.conv1.weight"]?.float32Values, network.downs[0].conv1.weight.value.values)

        let size = (oracle["input"] as! [String: Any])["size"] as! Int
        let (values, disc) = studyParityInput(size: size)
        let input = Tensor([1, 1, size, size], values: values)
        var sumOfSquares: Double = 0
        for value in input.values { sumOfSquares += Double(value) * Double(value) }
        XCTAssertEqual(sumOfSquares, oracle["input_sum_of_squares"] as! Double, accuracy: 0.05)

        let logits = network.forward(input, training: false)
        XCTAssertEqual(logits.shape, [1, 2, size, size])
        let planes = (0..<2).map { Array(UnsafeBufferPointer(start: logits.plane(0, $0), count: size * size)) }
        assertMatchesStudyParityOracle(planes, oracle: oracle, size: size)
        let predicted = hardPrediction(logits)
        let particles = predicted.reduce(0) { $0 + Int($1) }
        let expectedParticles = oracle["predicted_particle_pixels"] as! Int
        XCTAssertLessThanOrEqual(abs(particles - expectedParticles), max(1, expectedParticles / 1000),
                                 "predicted particle pixels \(particles) vs PyTorch \(expectedParticles)")
        let dice = diceScores(logits: logits, labels: disc)
        XCTAssertEqual(dice.hard[0], oracle["hard_dice_vs_disc"] as! Double, accuracy: 1e-3)
    }

    func testSafetensorsRoundTripOfAModelIsByteIdentical() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let network = ResidualUNet(architecture: UNetArchitecture(widths: [2, 3], bottleneckWidth: 4), seed: 5)
        let first = folder.appendingPathComponent("a.safetensors"), second = folder.appendingPathComponent("b.safetensors")
        try network.save(to: first)
        let loaded = try ResidualUNet.load(from: first)
        try loaded.save(to: second)
        XCTAssertEqual(try Data(contentsOf: first), try Data(contentsOf: second))
        XCTAssertEqual(loaded.architecture, network.architecture)
    }
}
