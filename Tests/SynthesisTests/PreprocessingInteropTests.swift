import Foundation
import Micrograph
import Preprocessing
import Synthesis
import XCTest

/// The synthetic frames exercise the study's preprocessing for the right reasons: x-ray removal
/// must find exactly the injected hits, and the flat-field correction must remove the session's
/// uneven illumination.
final class PreprocessingInteropTests: XCTestCase {
    func testXRayRemovalFindsEveryInjectedHitAndNothingElse() {
        for (dose, pixelScale) in [(80.0, 0.02), (423.0, 0.033), (884.0, 0.042)] {
            let condition = SynthesisCondition(material: .gold, particleSize: 2.2, pixelScale: pixelScale, dose: dose)
            let frame = SyntheticFrame(width: 256, height: 256, condition: condition, session: SessionProfile(index: 2, seed: 5),
                                       options: SynthesisOptions(xrayHitsPerMegapixel: 400), random: SplitMix64(seed: 17))
            XCTAssertGreaterThan(frame.xrayHits.count, 10)
            var cleaned = frame.counts
            let report = removeXRays(&cleaned, threshold: 1500, maxPasses: 2)
            XCTAssertEqual(report.outliersPerPass.first, frame.xrayHits.count, "dose \(dose)")
            XCTAssertEqual(report.totalOutliers, frame.xrayHits.count)
            let changed = (0..<cleaned.count).filter { cleaned.pixels[$0] != frame.counts.pixels[$0] }
            XCTAssertEqual(changed, frame.xrayHits.map { $0.row * 256 + $0.column }, "only the hits are replaced")
            // The replacement is the 8-neighbour mean, i.e. an ordinary value again.
            let typical = frame.session.offset + frame.session.gain * condition.electronsPerPixel
            for hit in frame.xrayHits {
                XCTAssertLessThan(Double(cleaned[hit.row, hit.column]), 2 * typical + 200)
            }
        }
    }

    /// Block means of the support pixels vary by several percent across the raw frame (the
    /// session's illumination) and by under 1% after the study's Bezier flat-field correction.
    func testFlatFieldCorrectionFlattensTheSessionIlluminationToWithinOnePercent() {
        let condition = SynthesisCondition(material: .gold, particleSize: 2.2, pixelScale: 0.042, dose: 884)
        var session = SessionProfile(index: 0, seed: 12)
        session.illumination = Illumination(tiltRows: 0.05, tiltColumns: -0.04, falloff: 0.45,
                                            centreRow: 0.35, centreColumn: 0.6)
        let frame = SyntheticFrame(width: 512, height: 512, condition: condition, session: session,
                                   random: SplitMix64(seed: 21))
        var raw = frame.counts
        removeXRays(&raw)
        let model = fitFlatField(raw, scale: 0.25, iterations: 2)
        let corrected = flatFieldCorrected(raw, model)
        let before = blockSpread(raw.pixels.map(Double.init), label: frame.label, side: 512, blocks: 4)
        let after = blockSpread(corrected.pixels, label: frame.label, side: 512, blocks: 4)
        XCTAssertGreaterThan(before, 0.05, "the synthetic illumination must be visible before correction")
        XCTAssertLessThan(after, 0.01, "flat-field leaves \(after) relative spread of support block means")
    }

    /// Two sessions imaging the same condition differ in raw counts (gain, illumination); after
    /// the flat-field division their support levels agree: the study's finding that flat-field
    /// correction is what makes nominally identical sessions comparable.
    func testFlatFieldMakesTwoSessionsOfOneConditionAgree() throws {
        let profiles = (0..<40).map { SessionProfile(index: $0, seed: 3) }
        let low = try XCTUnwrap(profiles.min { $0.gain < $1.gain }), high = try XCTUnwrap(profiles.max { $0.gain < $1.gain })
        XCTAssertGreaterThan(high.gain / low.gain, 1.05)
        let condition = SynthesisCondition(material: .gold, particleSize: 5, pixelScale: 0.042, dose: 423)
        func supportLevels(_ session: SessionProfile) -> (raw: Double, corrected: Double) {
            let frame = SyntheticFrame(width: 256, height: 256, condition: condition, session: session, random: SplitMix64(seed: 4))
            var raw = frame.counts
            removeXRays(&raw)
            let corrected = flatFieldCorrected(raw, fitFlatField(raw))
            var rawSum = 0.0, correctedSum = 0.0, n = 0.0
            for index in 0..<raw.count where frame.label.pixels[index] == 0 {
                rawSum += Double(raw.pixels[index]); correctedSum += corrected.pixels[index]; n += 1
            }
            return (rawSum / n, correctedSum / n)
        }
        let a = supportLevels(low), b = supportLevels(high)
        XCTAssertGreaterThan(abs(b.raw / a.raw - 1), 0.04, "raw sessions differ")
        XCTAssertEqual(b.corrected / a.corrected, 1, accuracy: 0.01, "corrected sessions agree")
    }

    /// The largest relative deviation of a block's mean over support pixels from the mean of all
    /// support pixels, with the frame cut into blocks x blocks squares.
    private func blockSpread(_ values: [Double], label: Raster<UInt8>, side: Int, blocks: Int) -> Double {
        var sums = [Double](repeating: 0, count: blocks * blocks), counts = sums
        var total = 0.0, totalCount = 0.0
        for row in 0..<side {
            for column in 0..<side where label[row, column] == 0 {
                let block = (row * blocks / side) * blocks + column * blocks / side
                sums[block] += values[row * side + column]
                counts[block] += 1
                total += values[row * side + column]
                totalCount += 1
            }
        }
        let mean = total / totalCount
        return zip(sums, counts).map { abs($0 / $1 / mean - 1) }.max()!
    }
}
