/// The nanoparticle materials of the study, with the crystallographic and scattering facts the
/// generator uses.
///
/// Lattice spacings are the real interplanar distances (nm): Au fcc a = 0.4078 nm gives
/// d{111} = 0.2355 and d{200} = 0.2039; Ag fcc a = 0.4086 nm gives 0.2359 / 0.2043; wurtzite
/// CdSe gives d(100) = 0.372, d(002) = 0.351, d(101) = 0.329.
public enum Material: String, CaseIterable, Codable, Sendable {
    case gold = "Au"
    case silver = "Ag"
    case cadmiumSelenide = "CdSe"

    /// The name as the study writes it (file names, metadata table).
    public var symbol: String { rawValue }

    /// Effective atomic number for contrast: Au 79, Ag 47, CdSe the mean of Cd 48 and Se 34.
    public var effectiveAtomicNumber: Double {
        switch self {
        case .gold: return 79
        case .silver: return 47
        case .cadmiumSelenide: return 41
        }
    }

    /// The shape the study's particles of this material have (its CdSe rods are "Oblong").
    public var typicalShape: ParticleShape { self == .cadmiumSelenide ? .oblong : .sphere }

    /// The lattice fringes one crystal shows when seen down a low-index zone axis: spacing (nm),
    /// the in-plane angle of the reciprocal vector relative to the crystal's reference direction
    /// (radians), and a relative amplitude. The vectors are mutually consistent (fcc [1-10]: g002
    /// at 0, g111 and g11-1 at +-54.74 deg; wurtzite [1-210]: g100 at 0, g002 at 90 deg, g101 at
    /// 27.9 deg), so the fringes of one particle come from one lattice.
    public var zoneAxisFringes: [LatticeFringe] {
        let angle111 = 54.7356 * Double.pi / 180
        switch self {
        case .gold:
            return [LatticeFringe(spacing: 0.2355, angle: angle111, weight: 1),
                    LatticeFringe(spacing: 0.2355, angle: -angle111, weight: 1),
                    LatticeFringe(spacing: 0.2039, angle: 0, weight: 0.55)]
        case .silver:
            return [LatticeFringe(spacing: 0.2359, angle: angle111, weight: 1),
                    LatticeFringe(spacing: 0.2359, angle: -angle111, weight: 1),
                    LatticeFringe(spacing: 0.2043, angle: 0, weight: 0.55)]
        case .cadmiumSelenide:
            return [LatticeFringe(spacing: 0.372, angle: 0, weight: 1),
                    LatticeFringe(spacing: 0.351, angle: Double.pi / 2, weight: 0.8),
                    LatticeFringe(spacing: 0.329, angle: 27.92 * Double.pi / 180, weight: 0.9)]
        }
    }

    /// The one strongest set of fringes a crystal shows when it is tilted off a zone axis.
    public var strongestFringe: LatticeFringe { zoneAxisFringes[0] }

    /// Parses the study's spelling ("Au", "Ag", "CdSe"), case-insensitively.
    public init?(symbol: String) {
        guard let match = Material.allCases.first(where: { $0.rawValue.lowercased() == symbol.lowercased() }) else {
            return nil
        }
        self = match
    }
}

/// One set of lattice planes as it appears in projection: fringes of period `spacing` (nm)
/// whose wave vector points at `angle` (radians) from the crystal's reference direction.
public struct LatticeFringe: Equatable, Codable, Sendable {
    public var spacing: Double
    public var angle: Double
    public var weight: Double

    public init(spacing: Double, angle: Double, weight: Double) {
        self.spacing = spacing
        self.angle = angle
        self.weight = weight
    }
}

/// The projected particle shape: a sphere projects to a disc, an oblong particle (a prolate
/// spheroid lying in the support plane) to an ellipse.
public enum ParticleShape: String, CaseIterable, Codable, Sendable {
    case sphere = "Sphere"
    case oblong = "Oblong"

    public init?(name: String) {
        guard let match = ParticleShape.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else {
            return nil
        }
        self = match
    }
}

/// The support film under the particles; its amorphous structure gives the background texture.
public enum Support: String, CaseIterable, Codable, Sendable {
    case ultrathinCarbon = "UT Carbon"
    case siliconNitride = "SiN"

    /// How the study's file names abbreviate it.
    public var fileNameCode: String { self == .ultrathinCarbon ? "UTC" : "SiN" }

    /// Relative standard deviation of the amorphous texture in the exit intensity. Silicon
    /// nitride membranes are thicker and heavier than ultrathin carbon, so their speckle is
    /// stronger.
    public var textureContrast: Double { self == .ultrathinCarbon ? 0.05 : 0.08 }

    /// The band of the amorphous speckle as two Gaussian widths (nm) of a difference of
    /// Gaussians: grains of roughly 0.2 to 0.6 nm, the range a thin amorphous film shows at
    /// Scherzer defocus.
    public var textureBand: (fine: Double, coarse: Double) {
        self == .ultrathinCarbon ? (0.06, 0.18) : (0.05, 0.15)
    }

    /// Accepts the study's spelling ("UT Carbon", "SiN") and the file-name code ("UTC").
    public init?(name: String) {
        let lowered = name.lowercased()
        if let match = Support.allCases.first(where: { $0.rawValue.lowercased() == lowered || $0.fileNameCode.lowercased() == lowered }) {
            self = match
        } else {
            return nil
        }
    }
}

/// The experimental condition of one synthetic frame: what is imaged and how.
public struct SynthesisCondition: Hashable, Codable, Sendable, CustomStringConvertible {
    public var material: Material
    /// Nominal particle diameter (nm); for an oblong particle the diameter of the disc of equal area.
    public var particleSize: Double
    public var shape: ParticleShape
    public var support: Support
    /// Pixel scale at the specimen (nm per pixel).
    public var pixelScale: Double
    /// Electron dose (electrons per square angstrom).
    public var dose: Double

    public init(material: Material, particleSize: Double, shape: ParticleShape? = nil,
                support: Support = .ultrathinCarbon, pixelScale: Double, dose: Double) {
        self.material = material
        self.particleSize = particleSize
        self.shape = shape ?? material.typicalShape
        self.support = support
        self.pixelScale = pixelScale
        self.dose = dose
    }

    /// Expected electrons reaching one pixel with no specimen: dose (e/A^2) x pixel area (A^2).
    public var electronsPerPixel: Double {
        let angstromsPerPixel = pixelScale * 10
        return dose * angstromsPerPixel * angstromsPerPixel
    }

    /// A canonical text naming the condition; its hash seeds the condition's frames, so adding or
    /// removing other conditions never changes them.
    public var canonicalKey: String {
        "\(material.rawValue)|\(formatStudyNumber(particleSize))|\(shape.rawValue)|\(support.rawValue)|\(formatStudyNumber(pixelScale))|\(formatStudyNumber(dose))"
    }

    public var description: String {
        "\(material.rawValue) \(formatStudyNumber(particleSize)) nm \(shape.rawValue.lowercased()) on \(support.rawValue), \(formatStudyNumber(pixelScale)) nm/px, \(formatStudyNumber(dose)) e/A^2"
    }
}

/// A number as the study's metadata table writes it: the shortest decimal that reads back as
/// the same double, without a trailing ".0" ("2.2", "5", "0.042", "423").
public func formatStudyNumber(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
    return "\(value)"
}

/// 64-bit FNV-1a of a string's UTF-8 bytes: a stable (platform- and run-independent) hash used
/// to derive random streams from names.
func stableHash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01B3
    }
    return hash
}
