/// The storage type of pixels in a file, named as NumPy names them.
public enum PixelType: String, Sendable, CaseIterable, Codable {
    case int8, uint8, int16, uint16, int32, uint32, int64, uint64, float32, float64, bool

    public var byteCount: Int {
        switch self {
        case .int8, .uint8, .bool: return 1
        case .int16, .uint16: return 2
        case .int32, .uint32, .float32: return 4
        case .int64, .uint64, .float64: return 8
        }
    }

    public var isFloatingPoint: Bool { self == .float32 || self == .float64 }
}

/// How one axis maps pixel indices to physical coordinates: `x = (index - origin) * scale`
/// as Gatan writes it; `unit` as written in the file ("nm", "A", "1/nm", "eV", "").
public struct AxisCalibration: Sendable, Equatable, Codable {
    public var scale: Double
    public var origin: Double
    public var unit: String

    public init(scale: Double = 1, origin: Double = 0, unit: String = "") {
        self.scale = scale
        self.origin = origin
        self.unit = unit
    }

    /// The scale converted to nanometres per pixel, when the unit is a length.
    public var nanometresPerPixel: Double? {
        switch unit.trimmingCharacters(in: .whitespaces) {
        case "nm": return scale
        case "A", "\u{00C5}", "\u{212B}", "ang", "Angstrom": return scale / 10
        case "pm": return scale / 1000
        case "um", "\u{00B5}m", "\u{03BC}m": return scale * 1000
        case "m": return scale * 1e9
        default: return nil
        }
    }
}

import Foundation
