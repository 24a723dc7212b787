import Foundation
import Micrograph

/// A dense float32 array with owned, zero-initialised storage (from `TensorPool`). Activations are NCHW
/// (`shape = [n, c, h, w]`, row-major: `w` varies fastest); parameters keep PyTorch's shapes
/// (`[out, in, kh, kw]` for a convolution, `[c]` for BatchNorm).
/// Not Sendable: its storage is written in place (the kernels' parallel loops split it between
/// their threads themselves).
public final class Tensor {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    /// Floats the storage block holds (at least `count`; a recycled block may be larger).
    private let capacity: Int

    /// A zero-filled tensor of `shape`.
    public init(_ shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        TensorTraffic.add(count * 4)
        (data, capacity) = TensorPool.block(floats: max(1, count), zeroed: true)
    }

    /// A tensor of `shape` whose storage is not cleared, for outputs that are written in full
    /// before they are read (clearing them was a memory pass per layer for nothing).
    init(uninitialized shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        TensorTraffic.add(count * 4)
        (data, capacity) = TensorPool.block(floats: max(1, count), zeroed: false)
    }

    /// A tensor holding `values` (count must match the shape).
    public convenience init(_ shape: [Int], values: [Float]) {
        self.init(shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    deinit { TensorPool.recycle(data, capacity: capacity) }

    public var n: Int { shape[0] }
    public var c: Int { shape[1] }
    public var h: Int { shape[2] }
    public var w: Int { shape[3] }
    /// Elements in one channel plane (h x w) of an NCHW tensor.
    public var plane: Int { shape[2] * shape[3] }

    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    public subscript(index: Int) -> Float {
        get { data[index] }
        set { data[index] = newValue }
    }

    public func zero() { data.update(repeating: 0, count: count) }

    public func copy() -> Tensor {
        let result = Tensor(shape)
        result.data.update(from: data, count: count)
        return result
    }

    /// Pointer to plane (image `image`, channel `channel`) of an NCHW tensor.
    @inline(__always) public func plane(_ image: Int, _ channel: Int) -> UnsafeMutablePointer<Float> {
        data + (image * shape[1] + channel) * shape[2] * shape[3]
    }
}

/// Bytes of tensor storage allocated since `reset` (a benchmark's measure of memory traffic:
/// every tensor is written once and read at least once).
/// Process-wide: with several networks running at once it counts them all.
public enum TensorTraffic {
    private static let bytes = Locked(0)
    static func add(_ count: Int) { bytes.withLock { $0 &+= count } }
    public static var bytesAllocated: Int { bytes.value }
    public static func reset() { bytes.withLock { $0 = 0 } }
}

/// Owns the storage of large tensors. A fresh block from malloc costs a page fault per 4 KiB
/// and, when glibc hands it back to the system on free, a TLB shootdown across the cores; on a
/// virtual machine that was a third of a training step (512 x 512, batch 8: 150 vs 113 ms an
/// image with the system's allocator told never to unmap). So large blocks are mapped here, on
/// transparent huge pages where the kernel allows (one fault per 2 MiB), faulted in writable when
/// mapped (a first read would map the shared zero page and the first write then fault again), and
/// kept when their tensor dies. A request takes the smallest idle block that holds it, up to four
/// times its size, so the smaller last batch of an epoch or a validation batch reuses the training
/// batch's blocks instead of mapping its own. Training frees and reallocates the same shapes every
/// step, so a steady state maps nothing new. Idle blocks beyond the largest working set seen (at
/// least `minimumCapacityBytes`) are unmapped least recently used first, so memory stays within
/// twice the working set even when shapes change. Small blocks go to calloc.
enum TensorPool {
    static let minimumFloats = 1 << 18
    static let minimumCapacityBytes = 256 << 20
    static let hugePageBytes = 2 << 20
    /// A block serves requests down to a quarter of its size.
    static let largestOversize = 4
    /// A block no tensor holds.
    private struct IdleBlock: @unchecked Sendable {
        // Sendable by hand: an idle block belongs to the pool alone (its tensor is gone), and the
        // pool hands it to one new tensor at a time, under its lock.
        var floats: Int
        var block: UnsafeMutablePointer<Float>
    }
    private struct State: Sendable {
        /// Least recently recycled first.
        var idle: [IdleBlock] = []
        var idleBytes = 0
        var liveBytes = 0
        var peakLiveBytes = 0
    }
    /// Shared by every tensor of the process (a cache of mappings); touched only under its lock.
    private static let state = Locked(State())

    /// A block of at least `floats` (zero-filled over `floats` when `zeroed`) and its capacity.
    static func block(floats: Int, zeroed: Bool) -> (UnsafeMutablePointer<Float>, Int) {
        guard floats >= minimumFloats else {
            guard let raw = zeroed ? calloc(floats, 4) : malloc(floats * 4) else { fatalError("out of memory for a tensor of \(floats) floats") }
            return (raw.bindMemory(to: Float.self, capacity: floats), floats)
        }
        let (reused, capacity): (IdleBlock?, Int) = state.withLock { state in
            var best: Int?
            for index in state.idle.indices.reversed()
            where state.idle[index].floats >= floats && state.idle[index].floats <= largestOversize * floats {
                if best == nil || state.idle[index].floats < state.idle[best!].floats { best = index }
                if state.idle[index].floats == floats { break }
            }
            var reused: IdleBlock?
            if let best {
                reused = state.idle.remove(at: best)
                state.idleBytes -= reused!.floats * 4
            }
            let capacity = reused?.floats ?? mappedBytes(floats: floats) / 4
            state.liveBytes += capacity * 4
            state.peakLiveBytes = max(state.peakLiveBytes, state.liveBytes)
            return (reused, capacity)
        }
        if let reused {
            if zeroed { reused.block.update(repeating: 0, count: floats) }
            return (reused.block, capacity)
        }
        return (mapBlock(floats: capacity), capacity)
    }

    static func recycle(_ block: UnsafeMutablePointer<Float>, capacity floats: Int) {
        guard floats >= minimumFloats else { free(block); return }
        let evicted: [IdleBlock] = state.withLock { state in
            state.liveBytes -= floats * 4
            state.idle.append(IdleBlock(floats: floats, block: block))
            state.idleBytes += floats * 4
            var evicted: [IdleBlock] = []
            while state.idleBytes > max(minimumCapacityBytes, state.peakLiveBytes), !state.idle.isEmpty {
                let oldest = state.idle.removeFirst()
                state.idleBytes -= oldest.floats * 4
                evicted.append(oldest)
            }
            return evicted
        }
        for block in evicted { unmapBlock(block.block, floats: block.floats) }
    }

    /// Bytes mapped for a block of `floats`: whole huge pages from 2 MiB up, whole pages below.
    private static func mappedBytes(floats: Int) -> Int {
        let bytes = floats * 4
        let unit = bytes >= hugePageBytes ? hugePageBytes : Int(getpagesize())
        return (bytes + unit - 1) / unit * unit
    }

    /// A zero-filled block, 2 MiB aligned when it spans huge pages (so the kernel can back it with
    /// them), its pages faulted in writable before it is handed out.
    private static func mapBlock(floats: Int) -> UnsafeMutablePointer<Float> {
        let bytes = mappedBytes(floats: floats)
        let alignment = bytes >= hugePageBytes ? hugePageBytes : 0
        guard let mapped = mmap(nil, bytes + alignment, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              mapped != MAP_FAILED else { fatalError("out of memory for a tensor of \(floats) floats") }
        var start = UInt(bitPattern: mapped)
        if alignment > 0 {
            let aligned = (start + UInt(alignment) - 1) & ~UInt(alignment - 1)
            if aligned > start { munmap(mapped, Int(aligned - start)) }
            let tail = aligned + UInt(bytes), end = start + UInt(bytes + alignment)
            if end > tail { munmap(UnsafeMutableRawPointer(bitPattern: tail), Int(end - tail)) }
            start = aligned
            #if os(Linux)
            _ = madvise(UnsafeMutableRawPointer(bitPattern: start), bytes, Int32(MADV_HUGEPAGE))
            #endif
        }
        let raw = UnsafeMutableRawPointer(bitPattern: start)!
        // MADV_POPULATE_WRITE (Linux 5.14) faults the pages in writable without our writing them;
        // elsewhere writing zeros does the same.
        if madvise(raw, bytes, populateWrite) != 0 { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        return raw.bindMemory(to: Float.self, capacity: floats)
    }

    private static let populateWrite: Int32 = 23

    private static func unmapBlock(_ block: UnsafeMutablePointer<Float>, floats: Int) {
        munmap(UnsafeMutableRawPointer(block), mappedBytes(floats: floats))
    }
}
