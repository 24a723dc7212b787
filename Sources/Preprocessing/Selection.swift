/// Exact order statistics without a full sort: radix selection on the bit patterns of the
/// values (16 bits a pass, one shared histogram pass for all requested ranks).
///
/// Complexity: O(n) per 16-bit digit (2 passes for `Float`, at most 4 for `Double`), no
/// allocation proportional to n. NaN is not supported (it would sort above +infinity).

@inline(__always) func sortableKey(_ value: Float) -> UInt32 {
    let bits = value.bitPattern
    return bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
}

@inline(__always) func floatFromSortableKey(_ key: UInt32) -> Float {
    Float(bitPattern: key & 0x8000_0000 != 0 ? key & 0x7FFF_FFFF : ~key)
}

@inline(__always) func sortableKey(_ value: Double) -> UInt64 {
    let bits = value.bitPattern
    return bits & 0x8000_0000_0000_0000 != 0 ? ~bits : bits | 0x8000_0000_0000_0000
}

@inline(__always) func doubleFromSortableKey(_ key: UInt64) -> Double {
    Double(bitPattern: key & 0x8000_0000_0000_0000 != 0 ? key & 0x7FFF_FFFF_FFFF_FFFF : ~key)
}

/// The values of rank `ranks[i]` (0-based, ascending order) of `values`, as a sort would place them.
/// - Precondition: every rank is in `0..<values.count`.
public func orderStatistics(_ values: UnsafeBufferPointer<Float>, ranks: [Int]) -> [Float] {
    floatOrderStatistics(values, ranks: ranks)
}

/// The values of rank `ranks[i]` (0-based, ascending order) of `values`.
public func orderStatistics(_ values: UnsafeBufferPointer<Double>, ranks: [Int]) -> [Double] {
    radixSelect(count: values.count, ranks: ranks, digits: 4) { sortableKey(values[$0]) }
        .map { doubleFromSortableKey($0) }
}

/// The median as NumPy's `np.median` defines it: the middle value, or for an even count the
/// mean of the two middle values, here computed in `Double` (exact for `Float` inputs).
public func median(_ values: UnsafeBufferPointer<Float>) -> Double {
    precondition(values.count > 0, "median of nothing")
    let n = values.count
    if n % 2 == 1 { return Double(floatOrderStatistics(values, ranks: [n / 2])[0]) }
    let pair = floatOrderStatistics(values, ranks: [n / 2 - 1, n / 2])
    return (Double(pair[0]) + Double(pair[1])) / 2
}

/// The hot path of x-ray removal: two 16-bit digits, the key computed inline.
func floatOrderStatistics(_ values: UnsafeBufferPointer<Float>, ranks: [Int]) -> [Float] {
    let count = values.count
    precondition(ranks.allSatisfy { $0 >= 0 && $0 < count }, "rank outside 0..<\(count)")
    let histogram = UnsafeMutablePointer<Int32>.allocate(capacity: 65536 * 4)
    defer { histogram.deallocate() }
    histogram.initialize(repeating: 0, count: 65536 * 4)
    let bits = UnsafeRawPointer(values.baseAddress!).assumingMemoryBound(to: UInt32.self)
    @inline(__always) func key(_ i: Int) -> UInt32 {
        let b = bits[i]
        return b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
    }
    var i = 0
    while i + 4 <= count {
        histogram[Int(key(i) >> 16)] &+= 1
        histogram[65536 + Int(key(i + 1) >> 16)] &+= 1
        histogram[131072 + Int(key(i + 2) >> 16)] &+= 1
        histogram[196608 + Int(key(i + 3) >> 16)] &+= 1
        i += 4
    }
    while i < count { histogram[Int(key(i) >> 16)] &+= 1; i += 1 }
    var top = [Int](repeating: 0, count: 65536)
    for b in 0..<65536 {
        top[b] = Int(histogram[b]) + Int(histogram[65536 + b]) + Int(histogram[131072 + b]) + Int(histogram[196608 + b])
    }
    var highs = [UInt32](), remaining = [Int]()
    for rank in ranks {
        var cumulative = 0, bin = 0
        while cumulative + top[bin] <= rank { cumulative += top[bin]; bin += 1 }
        highs.append(UInt32(bin)); remaining.append(rank - cumulative)
    }
    var distinct = [UInt32]()
    for h in highs where !distinct.contains(h) { distinct.append(h) }
    // one scan fills the low-digit histograms of up to four distinct high digits
    var results = [UInt32](repeating: 0, count: ranks.count)
    var start = 0
    while start < distinct.count {
        let group = Array(distinct[start..<min(distinct.count, start + 4)])
        histogram.update(repeating: 0, count: 65536 * 4)
        let h0 = group[0], h1 = group.count > 1 ? group[1] : UInt32.max, h2 = group.count > 2 ? group[2] : UInt32.max,
            h3 = group.count > 3 ? group[3] : UInt32.max
        for i in 0..<count {
            let k = key(i), high = k >> 16, low = Int(k & 0xFFFF)
            if high == h0 { histogram[low] &+= 1 }
            else if high == h1 { histogram[65536 + low] &+= 1 }
            else if high == h2 { histogram[131072 + low] &+= 1 }
            else if high == h3 { histogram[196608 + low] &+= 1 }
        }
        for (slot, h) in group.enumerated() {
            for r in ranks.indices where highs[r] == h {
                var cumulative = 0, bin = 0
                while cumulative + Int(histogram[slot * 65536 + bin]) <= remaining[r] {
                    cumulative += Int(histogram[slot * 65536 + bin]); bin += 1
                }
                results[r] = h << 16 | UInt32(bin)
            }
        }
        start += 4
    }
    return results.map(floatFromSortableKey)
}

/// `digits` 16-bit digits of the key, most significant first (the key's top digit is digit 0).
@inline(__always)
private func radixSelect(count: Int, ranks: [Int], digits: Int, key: (Int) -> UInt64) -> [UInt64] {
    precondition(ranks.allSatisfy { $0 >= 0 && $0 < count }, "rank outside 0..<\(count)")
    let totalBits = digits * 16
    var prefixes = [UInt64](repeating: 0, count: ranks.count)   // digits fixed so far
    var remaining = ranks                                        // rank within that prefix
    var histogram = [Int](repeating: 0, count: 65536 * 4)
    for digit in 0..<digits {
        let shift = UInt64(totalBits - 16 * (digit + 1))
        // distinct prefixes still needed (usually one or two)
        var distinct = [UInt64]()
        for p in prefixes where !distinct.contains(p) { distinct.append(p) }
        var extended = prefixes
        for (slot, prefix) in distinct.enumerated() {
            histogram.withUnsafeMutableBufferPointer { hist in
                for i in 0..<65536 { hist[i] = 0; hist[65536 + i] = 0; hist[131072 + i] = 0; hist[196608 + i] = 0 }
                let prefixShift = shift + 16
                if digit == 0 {
                    // four interleaved sub-histograms: camera counts crowd a few bins, and one
                    // counter would serialize on its own increments
                    var i = 0
                    while i + 4 <= count {
                        hist[Int(key(i) >> shift)] += 1
                        hist[65536 + Int(key(i + 1) >> shift)] += 1
                        hist[131072 + Int(key(i + 2) >> shift)] += 1
                        hist[196608 + Int(key(i + 3) >> shift)] += 1
                        i += 4
                    }
                    while i < count { hist[Int(key(i) >> shift)] += 1; i += 1 }
                } else {
                    for i in 0..<count {
                        let k = key(i)
                        if k >> prefixShift == prefix { hist[Int((k >> shift) & 0xFFFF)] += 1 }
                    }
                }
                for i in 0..<65536 { hist[i] += hist[65536 + i] + hist[131072 + i] + hist[196608 + i] }
            }
            _ = slot
            for r in ranks.indices where prefixes[r] == prefix {
                var cumulative = 0
                var bin = 0
                while cumulative + histogram[bin] <= remaining[r] { cumulative += histogram[bin]; bin += 1 }
                remaining[r] -= cumulative
                extended[r] = prefix << 16 | UInt64(bin)
            }
        }
        prefixes = extended
    }
    return prefixes
}
