import Micrograph
@testable import Segmentation
import XCTest

/// `ensemblePrediction` split over parallel forward passes gives what one pass at a time gives.
final class EnsembleTests: XCTestCase {
    func frame(width: Int, height: Int, seed: UInt64) -> Raster<Float> {
        var random = SplitMix64(seed: seed)
        return Raster(width: width, height: height, pixels: (0..<(width * height)).map { _ in Float(random.nextGaussian()) })
    }

    func testParallelPassesAgreeWithOneAtATimeAndRepeatBitForBit() throws {
        let architecture = UNetArchitecture(widths: [2, 4], bottleneckWidth: 8)
        let networks = (0..<3).map { ResidualUNet(architecture: architecture, seed: UInt64(10 + $0)) }
        // 5 x 3 tiles of 16 (the last row and column partial), batches of 2: 8 batches per model.
        let image = frame(width: 70, height: 40, seed: 3)
        let serial = try ensemblePrediction(networks: networks, image: image, tile: 16, batch: 2)
        let parallel = try ensemblePrediction(networks: networks, image: image, tile: 16, batch: 2, concurrentPasses: 2)
        let again = try ensemblePrediction(networks: networks, image: image, tile: 16, batch: 2, concurrentPasses: 2)
        XCTAssertEqual(parallel.probability.pixels, again.probability.pixels)
        XCTAssertEqual(parallel.deviation.pixels, again.deviation.pixels)
        XCTAssertEqual(parallel.mask.pixels, again.mask.pixels)
        XCTAssertEqual(serial.modelCount, 3)
        for (a, b) in zip(serial.probability.pixels, parallel.probability.pixels) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        for (a, b) in zip(serial.deviation.pixels, parallel.deviation.pixels) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        XCTAssertEqual(serial.disagreement, parallel.disagreement)
        XCTAssertEqual(serial.meanDeviation, parallel.meanDeviation, accuracy: 1e-6)
        // The probabilities are those of the models one by one: their mean, pixel by pixel.
        let single = try networks.map { try ensemblePrediction(networks: [$0], image: image, tile: 16, batch: 2) }
        for i in stride(from: 0, to: image.count, by: 97) {
            let mean = single.map { $0.probability.pixels[i] }.reduce(0, +) / 3
            XCTAssertEqual(parallel.probability.pixels[i], mean, accuracy: 1e-6)
        }
    }
}
