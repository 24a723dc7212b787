import Micrograph

/// A smooth, uneven illumination across the field of view, as a condenser that is slightly off
/// axis gives: a tilt plus a radial fall-off around an off-centre point.
///
/// With u running down the rows and v across the columns, both on [0, 1] (pixel centres at
/// `(row + 0.5) / height` and `(column + 0.5) / width`):
///
///     I(u, v) = 1 + tiltRows (u - 1/2) + tiltColumns (v - 1/2)
///                 - falloff ((u - u0)^2 + (v - v0)^2 - m(u0) - m(v0)),
///     m(c) = 1/3 - c + c^2  (the mean of (x - c)^2 over [0, 1]),
///
/// so the mean over the field is exactly 1 and the surface is a polynomial of degree 2 in each
/// axis: it lies in the span of the study's 2x2 Bezier flat-field basis, which can therefore
/// remove it completely.
public struct Illumination: Equatable, Codable, Sendable {
    public var tiltRows: Double
    public var tiltColumns: Double
    public var falloff: Double
    public var centreRow: Double
    public var centreColumn: Double

    public init(tiltRows: Double = 0, tiltColumns: Double = 0, falloff: Double = 0,
                centreRow: Double = 0.5, centreColumn: Double = 0.5) {
        self.tiltRows = tiltRows
        self.tiltColumns = tiltColumns
        self.falloff = falloff
        self.centreRow = centreRow
        self.centreColumn = centreColumn
    }

    /// Perfectly even illumination.
    public static let flat = Illumination()

    /// Relative intensity at (u, v) in [0, 1]^2; see the type's formula.
    @inline(__always)
    public func relativeIntensity(u: Double, v: Double) -> Double {
        let meanSquare = { (c: Double) in 1.0 / 3 - c + c * c }
        let du = u - centreRow, dv = v - centreColumn
        return 1 + tiltRows * (u - 0.5) + tiltColumns * (v - 0.5)
            - falloff * (du * du + dv * dv - meanSquare(centreRow) - meanSquare(centreColumn))
    }

    /// The illumination sampled at the pixel centres of a `width` x `height` frame, row-major.
    public func raster(width: Int, height: Int) -> Raster<Float> {
        var pixels = [Float](repeating: 0, count: width * height)
        for row in 0..<height {
            let u = (Double(row) + 0.5) / Double(height)
            for column in 0..<width {
                let v = (Double(column) + 0.5) / Double(width)
                pixels[row * width + column] = Float(relativeIntensity(u: u, v: v))
            }
        }
        return Raster(width: width, height: height, pixels: pixels)
    }
}

/// What stays the same within one microscope session and changes between sessions: the
/// camera's gain and dark offset and the illumination's unevenness.
public struct SessionProfile: Equatable, Codable, Sendable {
    /// Camera counts per detected electron.
    public var gain: Double
    /// Counts added to every pixel (dark level).
    public var offset: Double
    public var illumination: Illumination

    /// The nominal camera: 8 counts per electron, a dark level of 100 counts.
    public static let nominalGain = 8.0
    public static let nominalOffset = 100.0

    public init(gain: Double = SessionProfile.nominalGain, offset: Double = SessionProfile.nominalOffset,
                illumination: Illumination = .flat) {
        self.gain = gain
        self.offset = offset
        self.illumination = illumination
    }

    /// Session `index` of a study seeded with `seed`: the gain within +-6% of nominal (a small
    /// difference between sessions), an illumination whose fall-off coefficient is 0.15 to 0.45
    /// (the corners of a centred field 5 to 15% below the mean) around a centre within the middle
    /// half of the field, plus a tilt of up to +-6% across each axis.
    public init(index: Int, seed: UInt64) {
        var random = SplitMix64(seed: seed).derived(0x5E55_1000 &+ UInt64(index))
        let gainFactor = 1 + 0.06 * (2 * random.nextUnitDouble() - 1)
        let illumination = Illumination(
            tiltRows: 0.06 * (2 * random.nextUnitDouble() - 1),
            tiltColumns: 0.06 * (2 * random.nextUnitDouble() - 1),
            falloff: 0.15 + 0.3 * random.nextUnitDouble(),
            centreRow: 0.25 + 0.5 * random.nextUnitDouble(),
            centreColumn: 0.25 + 0.5 * random.nextUnitDouble())
        self.init(gain: SessionProfile.nominalGain * gainFactor, offset: SessionProfile.nominalOffset,
                  illumination: illumination)
    }
}
