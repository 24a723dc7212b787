/// NumPy's legacy global generator, bit for bit: `np.random.seed(s)` (MT19937 `init_genrand`)
/// and the draws the study uses from it (`np.random.shuffle`, `np.random.permutation`,
/// `np.random.random_sample`). hrtem uses it only where the study's exact order must be
/// reproduced (the image-level shuffle, seed 34522, and the trainer's per-set shuffles);
/// everything else takes `SplitMix64`.
public struct LegacyNumpyRandom: Sendable {
    private var state = [UInt32](repeating: 0, count: 624)
    private var position = 624

    /// `np.random.seed(seed)` for an integer seed in 0...2^32-1.
    public init(seed: UInt32) {
        state[0] = seed
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
        position = 624
    }

    private mutating func generate() {
        let upper: UInt32 = 0x8000_0000, lower: UInt32 = 0x7FFF_FFFF, matrixA: UInt32 = 0x9908_B0DF
        for i in 0..<624 {
            let y = (state[i] & upper) | (state[(i + 1) % 624] & lower)
            state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? matrixA : 0)
        }
        position = 0
    }

    /// `genrand_int32`.
    public mutating func nextUInt32() -> UInt32 {
        if position >= 624 { generate() }
        var y = state[position]
        position += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// NumPy's `next_uint64` for MT19937: high word first.
    public mutating func nextUInt64() -> UInt64 {
        let high = UInt64(nextUInt32())
        return high << 32 | UInt64(nextUInt32())
    }

    /// `random_sample()`: 53-bit double in [0, 1) from two words.
    public mutating func nextDouble() -> Double {
        let a = Double(nextUInt32() >> 5), b = Double(nextUInt32() >> 6)
        return (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// NumPy's `random_interval(max)`: uniform in 0...max by masked rejection (32-bit draws when
    /// max fits in 32 bits).
    public mutating func interval(_ max: UInt64) -> UInt64 {
        if max == 0 { return 0 }
        var mask = max
        mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4
        mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32
        if max <= 0xFFFF_FFFF {
            while true { let v = UInt64(nextUInt32()) & mask; if v <= max { return v } }
        } else {
            while true { let v = nextUInt64() & mask; if v <= max { return v } }
        }
    }

    /// `np.random.shuffle(x)` on a 1-D array: Fisher-Yates from the end.
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, through: 1, by: -1) {
            let j = Int(interval(UInt64(i)))
            array.swapAt(i, j)
        }
    }

    /// `np.random.permutation(n)`.
    public mutating func permutation(_ count: Int) -> [Int] {
        var index = Array(0..<count)
        shuffle(&index)
        return index
    }
}

/// The study's image-level shuffle: `np.random.seed(seed); idx = np.arange(count);
/// np.random.shuffle(idx)` (the study's preprocessing, step 4). Returns the frame order: position p of the
/// shuffled dataset holds frame `result[p]` of the selection (metadata-table order).
public func studyShuffle(count: Int, seed: UInt32 = 34522) -> [Int] {
    var generator = LegacyNumpyRandom(seed: seed)
    return generator.permutation(count)
}
