import Foundation
import Micrograph
@testable import Synthesis
import XCTest

final class SyntheticFrameTests: XCTestCase {
    private let gold = SynthesisCondition(material: .gold, particleSize: 5, pixelScale: 0.02, dose: 423)

    func testSameSeedGivesSameBytesAndAnotherSeedDoesNot() {
        let session = SessionProfile(index: 1, seed: 7)
        let first = SyntheticFrame(width: 200, height: 160, condition: gold, session: session, random: SplitMix64(seed: 42))
        let again = SyntheticFrame(width: 200, height: 160, condition: gold, session: session, random: SplitMix64(seed: 42))
        XCTAssertEqual(first.counts.pixels.withUnsafeBytes { Array($0) }, again.counts.pixels.withUnsafeBytes { Array($0) })
        XCTAssertEqual(first.label, again.label)
        XCTAssertEqual(first.particles, again.particles)
        XCTAssertEqual(first.xrayHits, again.xrayHits)
        let other = SyntheticFrame(width: 200, height: 160, condition: gold, session: session, random: SplitMix64(seed: 43))
        XCTAssertNotEqual(first.counts, other.counts)
    }

    func testLabelIsTheExactProjectedSupportAndParticlesDoNotOverlap() {
        for condition in [gold, SynthesisCondition(material: .cadmiumSelenide, particleSize: 5, pixelScale: 0.042, dose: 80)] {
            let frame = SyntheticFrame(width: 300, height: 240, condition: condition, session: SessionProfile(),
                                       random: SplitMix64(seed: 5))
            XCTAssertFalse(frame.particles.isEmpty)
            var expected = [UInt8](repeating: 0, count: 300 * 240)
            for row in 0..<240 {
                for column in 0..<300 where frame.particles.contains(where: {
                    $0.contains(row: Double(row) + 0.5, column: Double(column) + 0.5)
                }) {
                    expected[row * 300 + column] = 1
                }
            }
            XCTAssertEqual(frame.label.pixels, expected, "\(condition)")
            for (i, a) in frame.particles.enumerated() {
                for b in frame.particles[(i + 1)...] {
                    let distance = hypot(a.centreRow - b.centreRow, a.centreColumn - b.centreColumn)
                    XCTAssertGreaterThan(distance, a.semiMajor + b.semiMajor, "particles overlap")
                }
                if condition.shape == .oblong { XCTAssertGreaterThan(a.semiMajor / a.semiMinor, 1.3) }
            }
        }
    }

    /// The strongest peak of the power spectrum of a particle's interior sits at the {111}
    /// spacing divided by the pixel scale, whatever the magnification.
    func testFringePeriodInTheSpectrumMatchesTheLatticeSpacing() {
        for (material, pixelScale) in [(Material.gold, 0.02), (.gold, 0.042), (.silver, 0.033), (.cadmiumSelenide, 0.02)] {
            let condition = SynthesisCondition(material: material, particleSize: 10, pixelScale: pixelScale, dose: 5000)
            let particle = SyntheticParticle(centreRow: 256, centreColumn: 256, semiMajor: 240, semiMinor: 240,
                                             latticeAngle: 0.37, orientation: .zoneAxis, material: material)
            let frame = SyntheticFrame(width: 512, height: 512, condition: condition, session: SessionProfile(),
                                       options: SynthesisOptions(xrayHitsPerMegapixel: 0), particles: [particle],
                                       random: SplitMix64(seed: 11))
            let window = frame.counts.crop(row: 128, column: 128, width: 256, height: 256)
            let period = dominantPeriod(window)
            let expected = material.strongestFringe.spacing / pixelScale
            XCTAssertEqual(period, expected, accuracy: 0.05 * expected, "\(material) at \(pixelScale) nm/px")
        }
    }

    /// With even illumination the frame's mean is gain x dose x pixel area + offset: the
    /// amorphous texture is designed to have mean zero.
    func testMeanCountsMatchDoseTimesPixelAreaTimesGain() {
        for (dose, pixelScale) in [(80.0, 0.02), (423.0, 0.033), (884.0, 0.042)] {
            let condition = SynthesisCondition(material: .gold, particleSize: 5, pixelScale: pixelScale, dose: dose)
            let session = SessionProfile(gain: 7.5, offset: 50)
            let frame = SyntheticFrame(width: 256, height: 256, condition: condition, session: session,
                                       options: SynthesisOptions(coverage: 0, xrayHitsPerMegapixel: 0),
                                       random: SplitMix64(seed: 3))
            let mean = frame.counts.pixels.reduce(0.0) { $0 + Double($1) } / Double(frame.counts.count)
            let expected = 7.5 * dose * (pixelScale * 10) * (pixelScale * 10) + 50
            XCTAssertEqual(mean, expected, accuracy: 0.02 * expected, "dose \(dose), \(pixelScale) nm/px")
            XCTAssertTrue(frame.label.pixels.allSatisfy { $0 == 0 })
        }
    }

    /// Over a flat, texture-free region, counts are gain x Poisson(N0) + offset: variance
    /// gain^2 N0 and mean gain N0 + offset.
    func testVarianceOverAFlatRegionFollowsThePoissonLaw() {
        for (dose, pixelScale) in [(80.0, 0.02), (423.0, 0.02), (884.0, 0.042), (20000.0, 0.042)] {
            let condition = SynthesisCondition(material: .gold, particleSize: 5, pixelScale: pixelScale, dose: dose)
            let gain = 6.0
            let frame = SyntheticFrame(width: 256, height: 256, condition: condition,
                                       session: SessionProfile(gain: gain, offset: 100),
                                       options: SynthesisOptions(coverage: 0, xrayHitsPerMegapixel: 0, textureContrast: 0),
                                       random: SplitMix64(seed: 8))
            let values = frame.counts.pixels.map(Double.init)
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
            let electrons = condition.electronsPerPixel
            XCTAssertEqual((mean - 100) / gain, electrons, accuracy: 0.01 * electrons)
            XCTAssertEqual(variance / (gain * gain), electrons, accuracy: 0.03 * electrons, "mean \(electrons) e/px")
            // Counts are whole electrons times the gain.
            XCTAssertTrue(values.prefix(1000).allSatisfy { abs((($0 - 100) / gain).rounded() - ($0 - 100) / gain) < 1e-3 })
        }
    }

    func testPoissonDeviatesHaveTheRightMomentsAndZeroProbability() {
        for mean in [0.7, 3.2, 9.9, 10.1, 35.0, 156.0, 2500.0] {
            var random = SplitMix64(seed: 99)
            let n = 200_000
            var sum = 0.0, squares = 0.0, zeros = 0
            for _ in 0..<n {
                let k = poissonDeviate(mean: mean, using: &random)
                XCTAssertEqual(k, k.rounded())
                XCTAssertGreaterThanOrEqual(k, 0)
                sum += k
                squares += k * k
                if k == 0 { zeros += 1 }
            }
            let sampleMean = sum / Double(n)
            let sampleVariance = squares / Double(n) - sampleMean * sampleMean
            XCTAssertEqual(sampleMean, mean, accuracy: 5 * (mean / Double(n)).squareRoot(), "mean \(mean)")
            XCTAssertEqual(sampleVariance, mean, accuracy: 0.02 * mean, "variance at mean \(mean)")
            let p0 = exp(-mean)
            XCTAssertEqual(Double(zeros) / Double(n), p0, accuracy: 5 * (p0 * (1 - p0) / Double(n)).squareRoot() + 1e-9)
        }
        var random = SplitMix64(seed: 1)
        XCTAssertEqual(poissonDeviate(mean: 0, using: &random), 0)
    }

    func testLogGammaMatchesTheLibrary() {
        for x in [1.0, 2, 3, 6.5, 7, 11, 120, 5000] {
            XCTAssertEqual(logGamma(x), lgamma(x), accuracy: 1e-10 * max(1, abs(lgamma(x))), "x = \(x)")
        }
    }

    /// Heavier atoms and thicker particles darken more (mass-thickness contrast), so small or
    /// light particles are harder to see.
    func testContrastGrowsWithAtomicNumberAndThickness() {
        func particleContrast(_ material: Material, _ size: Double) -> Double {
            let condition = SynthesisCondition(material: material, particleSize: size, shape: .sphere,
                                               pixelScale: 0.02, dose: 20000)
            let radius = size / 2 / 0.02
            let particle = SyntheticParticle(centreRow: 128, centreColumn: 128, semiMajor: radius, semiMinor: radius,
                                             latticeAngle: 0, orientation: .offAxis, material: material)
            let frame = SyntheticFrame(width: 256, height: 256, condition: condition, session: SessionProfile(),
                                       options: SynthesisOptions(xrayHitsPerMegapixel: 0, textureContrast: 0),
                                       particles: [particle], random: SplitMix64(seed: 2))
            var inside = 0.0, insideCount = 0.0, outside = 0.0, outsideCount = 0.0
            for (value, label) in zip(frame.counts.pixels, frame.label.pixels) {
                if label == 1 { inside += Double(value); insideCount += 1 } else { outside += Double(value); outsideCount += 1 }
            }
            return 1 - (inside / insideCount - 100) / (outside / outsideCount - 100)
        }
        let gold5 = particleContrast(.gold, 5), silver5 = particleContrast(.silver, 5)
        let cdse5 = particleContrast(.cadmiumSelenide, 5), gold22 = particleContrast(.gold, 2.2)
        XCTAssertGreaterThan(gold5, silver5)
        XCTAssertGreaterThan(silver5, cdse5)
        XCTAssertGreaterThan(gold5, gold22)
        XCTAssertGreaterThan(cdse5, 0.02)
    }

    func testXrayHitsAreIsolatedFarAboveTheMedianAndInsideTheFrame() {
        let frame = SyntheticFrame(width: 256, height: 256, condition: SynthesisCondition(
            material: .gold, particleSize: 5, pixelScale: 0.042, dose: 884), session: SessionProfile(index: 0, seed: 4),
            options: SynthesisOptions(xrayHitsPerMegapixel: 300), random: SplitMix64(seed: 6))
        XCTAssertGreaterThan(frame.xrayHits.count, 5)
        let median = frame.counts.pixels.sorted()[frame.counts.count / 2]
        for (i, hit) in frame.xrayHits.enumerated() {
            XCTAssert((1..<255).contains(hit.row) && (1..<255).contains(hit.column))
            XCTAssertGreaterThan(frame.counts[hit.row, hit.column], median + 1500)
            for other in frame.xrayHits[(i + 1)...] {
                XCTAssertTrue(abs(other.row - hit.row) >= 3 || abs(other.column - hit.column) >= 3)
            }
        }
        // Nothing else is that bright.
        let bright = frame.counts.pixels.enumerated().filter { $0.element > median + 1500 }.map { $0.offset }
        XCTAssertEqual(bright, frame.xrayHits.map { $0.row * 256 + $0.column })
    }

    func testIlluminationHasMeanOneAndLiesInTheBezierSpan() {
        let illumination = SessionProfile(index: 3, seed: 9).illumination
        XCTAssertGreaterThan(illumination.falloff, 0)
        let raster = illumination.raster(width: 400, height: 300)
        let mean = raster.pixels.reduce(0.0) { $0 + Double($1) } / Double(raster.count)
        XCTAssertEqual(mean, 1, accuracy: 1e-4)
        // A degree-2 polynomial in each axis: third differences along rows and columns vanish.
        for row in stride(from: 0, to: 300, by: 37) {
            for column in 0..<(400 - 3) {
                let d3 = Double(raster[row, column + 3]) - 3 * Double(raster[row, column + 2])
                    + 3 * Double(raster[row, column + 1]) - Double(raster[row, column])
                XCTAssertEqual(d3, 0, accuracy: 1e-5)
            }
        }
        let spread = raster.pixels.max()! - raster.pixels.min()!
        XCTAssertGreaterThan(spread, 0.03, "sessions must differ visibly")
    }

    func testSessionsDifferInGainAndIlluminationButRepeatForTheSameSeed() {
        let a = SessionProfile(index: 0, seed: 1), b = SessionProfile(index: 1, seed: 1)
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(a, SessionProfile(index: 0, seed: 1))
        for index in 0..<20 {
            let gain = SessionProfile(index: index, seed: 5).gain
            XCTAssertEqual(gain, SessionProfile.nominalGain, accuracy: 0.061 * SessionProfile.nominalGain)
        }
    }

    func testTextureHasZeroMeanUnitDeviationAndIsBandLimited() {
        let texture = amorphousTexture(width: 128, height: 96, fine: 2, coarse: 6, using: SplitMix64(seed: 1))
        let values = texture.pixels.map(Double.init)
        let mean = values.reduce(0, +) / Double(values.count)
        let deviation = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 1e-5)
        XCTAssertEqual(deviation, 1, accuracy: 1e-4)
        // Neighbouring pixels are correlated (no white noise left) ...
        var neighbour = 0.0
        for row in 0..<96 { for column in 0..<127 { neighbour += Double(texture[row, column] * texture[row, column + 1]) } }
        XCTAssertGreaterThan(neighbour / Double(96 * 127), 0.5)
        // ... and the same seed repeats while the row order of work does not matter.
        XCTAssertEqual(texture, amorphousTexture(width: 128, height: 96, fine: 2, coarse: 6, using: SplitMix64(seed: 1)))
    }
}

/// The period (pixels) of the strongest non-central peak of a square raster's power spectrum,
/// after removing the mean and applying a Hann window; the peak's position is refined to a
/// fraction of a frequency bin by the power-weighted centroid of its 3 x 3 neighbourhood.
func dominantPeriod(_ raster: Raster<Float>) -> Double {
    let n = raster.width
    precondition(raster.height == n && n & (n - 1) == 0)
    let mean = raster.pixels.reduce(0.0) { $0 + Double($1) } / Double(raster.count)
    var re = [Double](repeating: 0, count: n * n), im = re
    for row in 0..<n {
        for column in 0..<n {
            let hann = (0.5 - 0.5 * cos(2 * Double.pi * Double(row) / Double(n)))
                * (0.5 - 0.5 * cos(2 * Double.pi * Double(column) / Double(n)))
            re[row * n + column] = (Double(raster[row, column]) - mean) * hann
        }
    }
    fft2D(&re, &im, n)
    func power(_ row: Int, _ column: Int) -> Double {
        let r = (row + n) % n, c = (column + n) % n
        return re[r * n + c] * re[r * n + c] + im[r * n + c] * im[r * n + c]
    }
    var best = 0.0, bestRow = 0, bestColumn = 0
    for row in (-n / 2)..<(n / 2) {
        for column in (-n / 2)..<(n / 2) where row * row + column * column >= 16 {
            if power(row, column) > best { best = power(row, column); bestRow = row; bestColumn = column }
        }
    }
    var weight = 0.0, kySum = 0.0, kxSum = 0.0
    for dr in -1...1 {
        for dc in -1...1 {
            let p = power(bestRow + dr, bestColumn + dc)
            weight += p
            kySum += p * Double(bestRow + dr)
            kxSum += p * Double(bestColumn + dc)
        }
    }
    return Double(n) / (kySum * kySum + kxSum * kxSum).squareRoot() * weight
}

private func fft2D(_ re: inout [Double], _ im: inout [Double], _ n: Int) {
    var rowRe = [Double](repeating: 0, count: n), rowIm = rowRe
    for row in 0..<n {
        for c in 0..<n { rowRe[c] = re[row * n + c]; rowIm[c] = im[row * n + c] }
        fft1D(&rowRe, &rowIm)
        for c in 0..<n { re[row * n + c] = rowRe[c]; im[row * n + c] = rowIm[c] }
    }
    for column in 0..<n {
        for r in 0..<n { rowRe[r] = re[r * n + column]; rowIm[r] = im[r * n + column] }
        fft1D(&rowRe, &rowIm)
        for r in 0..<n { re[r * n + column] = rowRe[r]; im[r * n + column] = rowIm[r] }
    }
}

/// In-place iterative radix-2 Cooley-Tukey FFT.
private func fft1D(_ re: inout [Double], _ im: inout [Double]) {
    let n = re.count
    var j = 0
    for i in 1..<n {
        var bit = n >> 1
        while j & bit != 0 { j ^= bit; bit >>= 1 }
        j |= bit
        if i < j { re.swapAt(i, j); im.swapAt(i, j) }
    }
    var length = 2
    while length <= n {
        let angle = -2 * Double.pi / Double(length)
        for start in stride(from: 0, to: n, by: length) {
            for k in 0..<(length / 2) {
                let wr = cos(angle * Double(k)), wi = sin(angle * Double(k))
                let a = start + k, b = start + k + length / 2
                let tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr
                re[b] = re[a] - tr; im[b] = im[a] - ti
                re[a] += tr; im[a] += ti
            }
        }
        length <<= 1
    }
}
