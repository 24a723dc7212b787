import Foundation
import Micrograph

/// Knobs of the generator beyond the experimental condition. The defaults are the ones
/// `hrtem synth` uses; tests switch parts off to isolate one effect.
public struct SynthesisOptions: Equatable, Codable, Sendable {
    /// Fraction of the field the particles aim to cover (before edge cropping).
    public var coverage: Double
    /// Relative standard deviation of particle diameters (clipped to +-2.5 of it).
    public var sizeSpread: Double
    /// Smallest gap between particles' outlines (nm).
    public var minimumGap: Double
    /// Expected x-ray hits per million pixels.
    public var xrayHitsPerMegapixel: Double
    /// The amorphous texture's relative contrast; nil takes the support's (`Support.textureContrast`).
    public var textureContrast: Double?
    /// Scales the lattice-fringe amplitude (1 = physical model; 0 = mass-thickness contrast only).
    public var fringeVisibility: Double

    public init(coverage: Double = 0.2, sizeSpread: Double = 0.1, minimumGap: Double = 0.3,
                xrayHitsPerMegapixel: Double = 8, textureContrast: Double? = nil, fringeVisibility: Double = 1) {
        self.coverage = coverage
        self.sizeSpread = sizeSpread
        self.minimumGap = minimumGap
        self.xrayHitsPerMegapixel = xrayHitsPerMegapixel
        self.textureContrast = textureContrast
        self.fringeVisibility = fringeVisibility
    }
}

/// How one particle's crystal is oriented relative to the beam.
public enum CrystalOrientation: String, Codable, Sendable {
    /// Down a low-index zone axis: every fringe set of `Material.zoneAxisFringes` shows.
    case zoneAxis
    /// Tilted so that only the strongest set of planes diffracts: one set of fringes.
    case oneSetOfPlanes
    /// Far from any zone axis: no fringes, mass-thickness contrast only.
    case offAxis
}

/// One particle as placed in a frame. Positions and lengths in pixels; (row, column) of the
/// centre measured like pixel centres, which sit at (r + 0.5, c + 0.5).
public struct SyntheticParticle: Equatable, Codable, Sendable {
    public var centreRow: Double
    public var centreColumn: Double
    /// Semi-axes of the projected outline (pixels); equal for a sphere.
    public var semiMajor: Double
    public var semiMinor: Double
    /// Direction of the major axis (radians from the column axis towards increasing rows).
    public var axisAngle: Double
    /// In-plane rotation of the crystal lattice (radians, same convention).
    public var latticeAngle: Double
    public var orientation: CrystalOrientation
    /// The fringes this particle shows, with angles already including `latticeAngle`.
    public var fringes: [LatticeFringe]

    /// A particle of `material` whose fringes follow from its orientation and lattice angle.
    public init(centreRow: Double, centreColumn: Double, semiMajor: Double, semiMinor: Double,
                axisAngle: Double = 0, latticeAngle: Double, orientation: CrystalOrientation, material: Material) {
        self.centreRow = centreRow
        self.centreColumn = centreColumn
        self.semiMajor = semiMajor
        self.semiMinor = semiMinor
        self.axisAngle = axisAngle
        self.latticeAngle = latticeAngle
        self.orientation = orientation
        let base: [LatticeFringe]
        switch orientation {
        case .zoneAxis: base = material.zoneAxisFringes
        case .oneSetOfPlanes: base = [material.strongestFringe]
        case .offAxis: base = []
        }
        fringes = base.map { LatticeFringe(spacing: $0.spacing, angle: $0.angle + latticeAngle, weight: $0.weight) }
    }

    /// Whether the point (row, column) lies strictly inside the projected outline.
    @inline(__always)
    public func contains(row: Double, column: Double) -> Bool {
        normalizedRadiusSquared(row: row, column: column) < 1
    }

    /// (p / a)^2 + (q / b)^2 in the particle's own axes: below 1 inside.
    @inline(__always)
    public func normalizedRadiusSquared(row: Double, column: Double) -> Double {
        let dx = column - centreColumn, dy = row - centreRow
        let c = cos(axisAngle), s = sin(axisAngle)
        let p = dx * c + dy * s, q = -dx * s + dy * c
        return (p * p) / (semiMajor * semiMajor) + (q * q) / (semiMinor * semiMinor)
    }
}

/// A position in a raster: row from the top, column from the left.
public struct PixelPosition: Hashable, Codable, Sendable, Comparable {
    public var row: Int
    public var column: Int
    public init(row: Int, column: Int) {
        self.row = row
        self.column = column
    }
    public static func < (a: PixelPosition, b: PixelPosition) -> Bool {
        (a.row, a.column) < (b.row, b.column)
    }
}

/// A synthetic HRTEM frame with exact ground truth.
///
/// Image formation, per pixel, with pixel centres at (r + 0.5, c + 0.5):
/// - expected electrons with no specimen N0 = dose (e/A^2) x (pixel scale in A)^2;
/// - the session's illumination I(u, v) (mean 1) and the support's amorphous texture
///   (1 + c_s x T, T band-limited with mean 0 and deviation 1, c_s the support's contrast);
/// - inside a particle, with projected thickness t = 2 b sqrt(1 - s) nm (b the depth semi-axis,
///   s the normalized squared radius), mass-thickness attenuation exp(-t / L_Z),
///   L_Z = 12 nm x (79 / Z)^1.5, times fringes 1 + A(t) f, where
///   A(t) = 0.3 x (1 - exp(-(Z / 79)^1.5 t / 2 nm)) saturates with thickness, and f in [-1, 1]
///   is the weighted mean of cos(2 pi g . (x - x0)) over the particle's fringes (|g| = 1 / d,
///   converted to cycles per pixel by the pixel scale; one lattice origin x0 per particle);
/// - detected electrons ~ Poisson(expected), exact (see `poissonDeviate`);
/// - counts = gain x electrons + offset (the session's camera);
/// - x-ray hits: isolated pixels (never on the outermost ring, at least 3 pixels apart) set to
///   max(pixel, 1.5 x the brightest expected background) + 2000 to 10000 counts, so each is
///   more than 1500 counts above the frame's median.
/// The label is 1 where the pixel centre lies inside a particle's projected outline, else 0.
public struct SyntheticFrame: Sendable {
    public var condition: SynthesisCondition
    public var session: SessionProfile
    /// Camera counts, row-major, `height` rows of `width`.
    public var counts: Raster<Float>
    /// 1 = particle (pixel centre inside a projected outline), 0 = support.
    public var label: Raster<UInt8>
    public var particles: [SyntheticParticle]
    /// Where x-ray hits were injected, sorted by row then column.
    public var xrayHits: [PixelPosition]
    /// Expected electrons per pixel with no specimen under even illumination.
    public var electronsPerPixel: Double { condition.electronsPerPixel }

    /// Generates a frame. Deterministic: the same arguments give the same bytes, on any number
    /// of threads (rows are spread over the cores; each row's random stream is derived from its
    /// index). Cost is linear in the pixel count: about 0.1 s of CPU per megapixel.
    /// - Parameter particles: where to put particles; nil places them at random (non-overlapping,
    ///   aiming at `options.coverage`). Given particles are drawn as they are, overlaps included.
    /// - Precondition: width and height >= 8; pixel scale, dose and particle size > 0.
    public init(width: Int, height: Int, condition: SynthesisCondition, session: SessionProfile,
                options: SynthesisOptions = SynthesisOptions(), particles explicitParticles: [SyntheticParticle]? = nil,
                random: SplitMix64) {
        precondition(width >= 8 && height >= 8, "a synthetic frame needs at least 8 x 8 pixels")
        precondition(condition.pixelScale > 0 && condition.dose > 0 && condition.particleSize > 0,
                     "pixel scale, dose and particle size must be positive")
        self.condition = condition
        self.session = session
        let count = width * height
        let pixelScale = condition.pixelScale

        // 1. Where the particles are.
        var layoutRandom = random.derived(1)
        particles = explicitParticles ?? placeParticles(width: width, height: height, condition: condition,
                                                        options: options, using: &layoutRandom)

        // 2. The specimen's transmission factor (1 on the bare support) and the exact label.
        var transmission = [Float](repeating: 1, count: count)
        var labelPixels = [UInt8](repeating: 0, count: count)
        let z = condition.material.effectiveAtomicNumber
        let relativeZ = pow(z / 79, 1.5)
        let massThicknessLength = 12.0 / relativeZ
        for particle in particles {
            renderParticle(particle, width: width, height: height, pixelScale: pixelScale,
                           relativeZ: relativeZ, massThicknessLength: massThicknessLength,
                           fringeVisibility: options.fringeVisibility,
                           transmission: &transmission, label: &labelPixels)
        }

        // 3. Expected electrons per pixel.
        let contrast = options.textureContrast ?? condition.support.textureContrast
        let band = condition.support.textureBand
        let texture: Raster<Float>? = contrast > 0
            ? amorphousTexture(width: width, height: height, fine: band.fine / pixelScale,
                               coarse: band.coarse / pixelScale, using: random.derived(2))
            : nil
        let illumination = session.illumination.raster(width: width, height: height)
        let n0 = condition.electronsPerPixel
        var expected = [Float](repeating: 0, count: count)
        for index in 0..<count {
            var value = n0 * Double(illumination.pixels[index]) * Double(transmission[index])
            if let texture { value *= 1 + contrast * Double(texture.pixels[index]) }
            expected[index] = Float(max(0, value))
        }

        // 4. Electron counting and the camera.
        let gain = session.gain, offset = session.offset
        var countPixels = [Float](repeating: 0, count: count)
        let noiseRandom = random.derived(3)
        countPixels.withUnsafeMutableBufferPointer { out in
            let outBase = out.baseAddress!
            expected.withUnsafeBufferPointer { means in
                let meanBase = means.baseAddress!
                concurrentRows(height) { row in
                    var rowRandom = noiseRandom.derived(UInt64(row))
                    for column in 0..<width {
                        let index = row * width + column
                        let electrons = poissonDeviate(mean: Double(meanBase[index]), using: &rowRandom)
                        outBase[index] = Float(gain * electrons + offset)
                    }
                }
            }
        }

        // 5. X-ray hits.
        var xrayRandom = random.derived(4)
        var brightestBackground = 0.0
        for value in illumination.pixels { brightestBackground = max(brightestBackground, Double(value)) }
        brightestBackground = offset + gain * n0 * brightestBackground
        let expectedHits = options.xrayHitsPerMegapixel * Double(count) / 1_000_000
        let hitCount = Int(poissonDeviate(mean: expectedHits, using: &xrayRandom))
        var hits = [PixelPosition]()
        var attempts = 0
        while hits.count < hitCount && attempts < 100 * (hitCount + 1) {
            attempts += 1
            let row = 1 + Int(xrayRandom.nextUnitDouble() * Double(height - 2))
            let column = 1 + Int(xrayRandom.nextUnitDouble() * Double(width - 2))
            let deposit = 2000 + 8000 * xrayRandom.nextUnitDouble()
            if hits.contains(where: { abs($0.row - row) < 3 && abs($0.column - column) < 3 }) { continue }
            hits.append(PixelPosition(row: row, column: column))
            let index = row * width + column
            countPixels[index] = Float(max(Double(countPixels[index]), 1.5 * brightestBackground) + deposit)
        }
        xrayHits = hits.sorted()
        counts = Raster(width: width, height: height, pixels: countPixels)
        label = Raster(width: width, height: height, pixels: labelPixels)
    }
}

/// Places non-overlapping particles uniformly at random (centres anywhere in the field, so some
/// are cut by the frame's edge, as in real frames) until the target coverage is reached or
/// rejection sampling gives up.
func placeParticles(width: Int, height: Int, condition: SynthesisCondition, options: SynthesisOptions,
                    using random: inout SplitMix64) -> [SyntheticParticle] {
    let meanRadius = condition.particleSize / 2 / condition.pixelScale
    let area = Double(width * height)
    let target = options.coverage > 0
        ? max(1, Int((options.coverage * area / (Double.pi * meanRadius * meanRadius)).rounded()))
        : 0
    let gap = max(2, options.minimumGap / condition.pixelScale)
    var particles = [SyntheticParticle]()
    var attempts = 0
    while particles.count < target && attempts < 200 * target {
        attempts += 1
        let spread = max(-2.5, min(2.5, random.nextGaussian())) * options.sizeSpread
        let radius = meanRadius * max(0.5, 1 + spread)
        var semiMajor = radius, semiMinor = radius
        if condition.shape == .oblong {
            let aspect = 1.4 + 0.5 * random.nextUnitDouble()
            semiMajor = radius * aspect.squareRoot()
            semiMinor = radius / aspect.squareRoot()
        }
        let centreRow = random.nextUnitDouble() * Double(height)
        let centreColumn = random.nextUnitDouble() * Double(width)
        let axisAngle = random.nextUnitDouble() * Double.pi
        let orientationDraw = random.nextUnitDouble()
        let latticeDraw = random.nextUnitDouble() * 2 * Double.pi
        let overlaps = particles.contains { other in
            let dr = other.centreRow - centreRow, dc = other.centreColumn - centreColumn
            let reach = other.semiMajor + semiMajor + gap
            return dr * dr + dc * dc < reach * reach
        }
        if overlaps { continue }
        let orientation: CrystalOrientation = orientationDraw < 0.55 ? .zoneAxis
            : (orientationDraw < 0.9 ? .oneSetOfPlanes : .offAxis)
        // Wurtzite rods grow along c: the (002) planes lie across the long axis.
        let latticeAngle = condition.shape == .oblong && condition.material == .cadmiumSelenide
            ? axisAngle - Double.pi / 2 : latticeDraw
        particles.append(SyntheticParticle(centreRow: centreRow, centreColumn: centreColumn,
                                           semiMajor: semiMajor, semiMinor: semiMinor, axisAngle: axisAngle,
                                           latticeAngle: latticeAngle, orientation: orientation,
                                           material: condition.material))
    }
    return particles
}

/// Multiplies the particle's transmission (mass-thickness x fringes) into `transmission` and
/// marks its support in `label`. Fringe phases advance along each row by a rotation recurrence
/// (no trigonometry per pixel); the recurrence restarts every row, so rounding cannot build up.
private func renderParticle(_ particle: SyntheticParticle, width: Int, height: Int, pixelScale: Double,
                            relativeZ: Double, massThicknessLength: Double, fringeVisibility: Double,
                            transmission: inout [Float], label: inout [UInt8]) {
    let reach = particle.semiMajor + 1
    let rowStart = max(0, Int((particle.centreRow - reach).rounded(.down)))
    let rowEnd = min(height - 1, Int((particle.centreRow + reach).rounded(.up)))
    let columnStart = max(0, Int((particle.centreColumn - reach).rounded(.down)))
    let columnEnd = min(width - 1, Int((particle.centreColumn + reach).rounded(.up)))
    guard rowStart <= rowEnd, columnStart <= columnEnd else { return }
    let depthSemiAxis = particle.semiMinor * pixelScale   // nm
    let c = cos(particle.axisAngle), s = sin(particle.axisAngle)
    let inverseA2 = 1 / (particle.semiMajor * particle.semiMajor)
    let inverseB2 = 1 / (particle.semiMinor * particle.semiMinor)
    let fringes = particle.fringes
    let totalWeight = fringes.reduce(0) { $0 + $1.weight }
    // Wave vectors in radians per pixel along columns (x) and rows (y).
    let waves = fringes.map { fringe -> (kx: Double, ky: Double, weight: Double) in
        let k = 2 * Double.pi * pixelScale / fringe.spacing
        return (k * cos(fringe.angle), k * sin(fringe.angle), fringe.weight / totalWeight)
    }
    let steps = waves.map { (cos($0.kx), sin($0.kx)) }
    var phasors = [(re: Double, im: Double)](repeating: (1, 0), count: waves.count)
    for row in rowStart...rowEnd {
        let dy = Double(row) + 0.5 - particle.centreRow
        let dx0 = Double(columnStart) + 0.5 - particle.centreColumn
        for w in 0..<waves.count {
            // Phase relative to the particle centre: the lattice origin is the centre.
            let phase = waves[w].kx * dx0 + waves[w].ky * dy
            phasors[w] = (cos(phase), sin(phase))
        }
        for column in columnStart...columnEnd {
            let dx = Double(column) + 0.5 - particle.centreColumn
            let p = dx * c + dy * s, q = -dx * s + dy * c
            let normalized = p * p * inverseA2 + q * q * inverseB2
            if normalized < 1 {
                let index = row * width + column
                let thickness = 2 * depthSemiAxis * (1 - normalized).squareRoot()
                var fringe = 0.0
                for w in 0..<waves.count { fringe += waves[w].weight * phasors[w].re }
                let amplitude = fringeVisibility * 0.3 * (1 - exp(-relativeZ * thickness / 2))
                let factor = exp(-thickness / massThicknessLength) * (1 + amplitude * fringe)
                transmission[index] = Float(Double(transmission[index]) * factor)
                label[index] = 1
            }
            for w in 0..<waves.count {
                let (re, im) = phasors[w]
                phasors[w] = (re * steps[w].0 - im * steps[w].1, re * steps[w].1 + im * steps[w].0)
            }
        }
    }
}
