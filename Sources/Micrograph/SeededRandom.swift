import Foundation

/// SplitMix64: a small, fast, seedable generator. Every random choice in hrtem takes one of
/// these (or a generator derived from it) explicitly; nothing reads a global generator, so the
/// same seed gives the same bytes.
///
/// The drawing methods are `@inlinable`: other modules (synthesis, augmentation) draw once per
/// pixel, and an opaque call across the module boundary costs more than the generator itself.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The whole state; read-only outside (stored in `bits` so inlinable methods can advance it).
    public var state: UInt64 { bits }
    @usableFromInline var bits: UInt64

    @inlinable public init(seed: UInt64) { bits = seed }

    @inlinable public mutating func next() -> UInt64 {
        bits &+= 0x9E37_79B9_7F4A_7C15
        var z = bits
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) with 53 random bits.
    @inlinable public mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A standard normal deviate (Box-Muller; the second value is discarded for simplicity of state).
    @inlinable public mutating func nextGaussian() -> Double {
        var u = nextUnitDouble()
        while u <= .leastNonzeroMagnitude { u = nextUnitDouble() }
        let v = nextUnitDouble()
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * .pi * v)
    }

    /// An independent generator for sub-task `index` (e.g. frame i of a synthetic session), so
    /// parallel work draws the same numbers whatever the order it runs in.
    public func derived(_ index: UInt64) -> SplitMix64 {
        var mixer = SplitMix64(seed: bits ^ (index &* 0xD1B5_4A32_D192_ED03))
        return SplitMix64(seed: mixer.next())
    }
}

