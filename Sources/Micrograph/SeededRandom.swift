/// SplitMix64: a small, fast, seedable generator. Every random choice in hrtem takes one of
/// these (or a generator derived from it) explicitly; nothing reads a global generator, so the
/// same seed gives the same bytes.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) with 53 random bits.
    public mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A standard normal deviate (Box-Muller; the second value is discarded for simplicity of state).
    public mutating func nextGaussian() -> Double {
        var u = nextUnitDouble()
        while u <= .leastNonzeroMagnitude { u = nextUnitDouble() }
        let v = nextUnitDouble()
        return (-2 * _log(u)).squareRoot() * _cos(2 * .pi * v)
    }

    /// An independent generator for sub-task `index` (e.g. frame i of a synthetic session), so
    /// parallel work draws the same numbers whatever the order it runs in.
    public func derived(_ index: UInt64) -> SplitMix64 {
        var mixer = SplitMix64(seed: state ^ (index &* 0xD1B5_4A32_D192_ED03))
        return SplitMix64(seed: mixer.next())
    }
}

import Foundation
@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
