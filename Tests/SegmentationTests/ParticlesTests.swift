import Micrograph
@testable import Segmentation
import XCTest

/// Connected particles, their measures, and the matching against a label, on masks whose
/// answers are known exactly.
final class ParticlesTests: XCTestCase {
    /// A mask with filled axis-aligned rectangles (row, column, height, width).
    private func mask(width: Int, height: Int, rectangles: [(Int, Int, Int, Int)]) -> Raster<UInt8> {
        var raster = Raster<UInt8>(width: width, height: height, repeating: 0)
        for (row, column, h, w) in rectangles {
            for r in row..<(row + h) { for c in column..<(column + w) { raster[r, c] = 1 } }
        }
        return raster
    }

    func testRectanglesHaveExactMeasures() {
        let analysis = findParticles(in: mask(width: 40, height: 30, rectangles: [(2, 3, 4, 6), (10, 0, 3, 3), (20, 20, 10, 1)]))
        XCTAssertEqual(analysis.particles.count, 3)
        let first = analysis.particles[0]
        XCTAssertEqual(first.id, 1)
        XCTAssertEqual(first.area, 24)
        XCTAssertEqual(first.centroidRow, 3.5, accuracy: 1e-12)
        XCTAssertEqual(first.centroidColumn, 5.5, accuracy: 1e-12)
        XCTAssertEqual(first.feretMax, (16.0 + 36).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(first.feretMin, 4, accuracy: 1e-12)
        XCTAssertEqual(first.equivalentDiameter, (4 * 24 / Double.pi).squareRoot(), accuracy: 1e-12)
        XCTAssertFalse(first.touchesBorder)
        // Moments of a 4 x 6 block: variances (16-1)/12 and (36-1)/12.
        XCTAssertEqual(first.eccentricity, (1 - (15.0 / 12) / (35.0 / 12)).squareRoot(), accuracy: 1e-12)
        XCTAssertTrue(analysis.particles[1].touchesBorder, "column 0")
        XCTAssertEqual(analysis.particles[1].eccentricity, 0, accuracy: 1e-12, "a square's moments are round")
        XCTAssertTrue(analysis.particles[2].touchesBorder, "last row")
        XCTAssertEqual(analysis.particles[2].feretMin, 1, accuracy: 1e-12)
        XCTAssertEqual(analysis.labels[3, 4], 1)
        XCTAssertEqual(analysis.labels[11, 1], 2)
        XCTAssertEqual(analysis.labels[0, 0], 0)
    }

    func testDiagonalNeighboursAreOneParticle() {
        var raster = Raster<UInt8>(width: 5, height: 5, repeating: 0)
        for i in 0..<5 { raster[i, i] = 255 }
        raster[0, 4] = 1
        let analysis = findParticles(in: raster)
        XCTAssertEqual(analysis.particles.map(\.area), [5, 1], "8-connectivity joins the diagonal; the corner pixel is apart")
        XCTAssertEqual(analysis.particles[0].feretMax, 5 * 2.0.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(analysis.particles[0].eccentricity, 1, accuracy: 1e-9, "a line has no second axis")
    }

    func testDiscAreaIsTheCountOfCentresInside() {
        let radius = 9.3, centre = (20.2, 17.6)
        var raster = Raster<UInt8>(width: 40, height: 40, repeating: 0)
        var inside = 0
        for r in 0..<40 {
            for c in 0..<40 {
                let dr = Double(r) + 0.5 - centre.0, dc = Double(c) + 0.5 - centre.1
                if dr * dr + dc * dc < radius * radius { raster[r, c] = 1; inside += 1 }
            }
        }
        let particle = findParticles(in: raster).particles[0]
        XCTAssertEqual(particle.area, inside)
        XCTAssertEqual(particle.equivalentDiameter, 2 * radius, accuracy: 0.3)
        XCTAssertEqual(particle.feretMax, 2 * radius, accuracy: 1.5)
        XCTAssertEqual(particle.feretMin, 2 * radius, accuracy: 1.5)
        XCTAssertLessThan(particle.eccentricity, 0.3, "pixelation alone: a few percent between the axes")
    }

    func testMatchingCountsAndSizeBias() {
        // Truth: three squares. Prediction: the first grown by a ring (IoU 36/64 >= 0.5), the
        // second shifted far (IoU < 0.5: missed and spurious), the third absent, one extra blob.
        let truth = findParticles(in: mask(width: 60, height: 60, rectangles: [(5, 5, 6, 6), (30, 30, 6, 6), (45, 5, 4, 4)]))
        let predicted = findParticles(in: mask(width: 60, height: 60, rectangles: [(4, 4, 8, 8), (33, 33, 6, 6), (50, 50, 2, 2)]))
        let comparison = compareParticles(predicted: predicted, truth: truth, scale: .nanometresPerPixel(0.5))
        XCTAssertEqual(comparison.unit, "nm")
        XCTAssertEqual(comparison.detected, 1)
        XCTAssertEqual(comparison.missed, 2)
        XCTAssertEqual(comparison.spurious, 2)
        XCTAssertEqual(comparison.f1, 2.0 / 6, accuracy: 1e-12)
        XCTAssertEqual(comparison.matches, [ParticleMatch(predicted: 1, truth: 1, iou: 36.0 / 64)])
        let d = { (area: Double) in (4 * area / Double.pi).squareRoot() * 0.5 }
        XCTAssertEqual(comparison.meanTrueDiameter!, (d(36) + d(36) + d(16)) / 3, accuracy: 1e-12)
        XCTAssertEqual(comparison.meanPredictedDiameter!, (d(64) + d(36) + d(4)) / 3, accuracy: 1e-12)
        XCTAssertEqual(comparison.matchedDiameterDifference!, d(64) - d(36), accuracy: 1e-12)
        // Diameters sorted: predicted d4 < d36 < d64, truth d16 < d36 = d36; the distribution functions differ most (1/3) at d4 and at d36.
        XCTAssertEqual(comparison.kolmogorovSmirnov!, 1.0 / 3, accuracy: 1e-12)

        let itself = compareParticles(predicted: truth, truth: truth, scale: .pixels)
        XCTAssertEqual(itself.unit, "px")
        XCTAssertEqual([itself.detected, itself.missed, itself.spurious], [3, 0, 0])
        XCTAssertEqual(itself.f1, 1)
        XCTAssertEqual(itself.meanDiameterDifference, 0)
        XCTAssertEqual(itself.kolmogorovSmirnov, 0)
    }

    func testEmptyMasks() {
        let empty = findParticles(in: Raster<UInt8>(width: 8, height: 8, repeating: 0))
        XCTAssertTrue(empty.particles.isEmpty)
        let truth = findParticles(in: mask(width: 8, height: 8, rectangles: [(1, 1, 2, 2)]))
        let comparison = compareParticles(predicted: empty, truth: truth, scale: .pixels)
        XCTAssertEqual([comparison.detected, comparison.missed, comparison.spurious], [0, 1, 0])
        XCTAssertEqual(comparison.f1, 0)
        XCTAssertNil(comparison.meanDiameterDifference)
        XCTAssertNil(comparison.kolmogorovSmirnov)
        XCTAssertEqual(compareParticles(predicted: empty, truth: empty, scale: .pixels).f1, 1)
    }

    func testKolmogorovSmirnovAgainstHandComputedValues() {
        XCTAssertEqual(kolmogorovSmirnovStatistic([1, 2, 3], [1, 2, 3]), 0)
        XCTAssertEqual(kolmogorovSmirnovStatistic([1, 2], [3, 4]), 1)
        // scipy.stats.ks_2samp([1, 2, 3, 4], [2.5, 3.5]).statistic == 0.5
        XCTAssertEqual(kolmogorovSmirnovStatistic([1, 2, 3, 4], [2.5, 3.5])!, 0.5, accuracy: 1e-12)
    }

    func testTableAndHistogramNameTheirUnit() {
        let particles = findParticles(in: mask(width: 10, height: 10, rectangles: [(2, 2, 2, 2)])).particles
        let inPixels = ParticleTable.csv(particles, scale: .pixels)
        XCTAssertTrue(inPixels.hasPrefix("id,area_px,area_px2,equivalent_diameter_px,feret_max_px,feret_min_px,"), inPixels)
        XCTAssertFalse(inPixels.contains("nm"))
        let inNanometres = ParticleTable.csv(particles, scale: .nanometresPerPixel(0.1))
        XCTAssertTrue(inNanometres.contains("equivalent_diameter_nm"))
        XCTAssertTrue(inNanometres.contains(",4,0.04,"), inNanometres)
        let svg = ParticleTable.histogramSVG(diameters: [1, 2, 2], unit: "px", title: "a <b>")
        XCTAssertTrue(svg.contains("equivalent diameter (px)"))
        XCTAssertTrue(svg.contains("a &lt;b&gt;"))
        XCTAssertEqual(svg.components(separatedBy: "<rect").count - 1, 2, "two non-empty bins")
    }
}
