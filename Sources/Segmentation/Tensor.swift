import CBLAS
import CKernels
import Dispatch
import Foundation

/// A dense float32 array with owned, zero-initialised storage (from `TensorPool`). Activations are NCHW
/// (`shape = [n, c, h, w]`, row-major: `w` varies fastest); parameters keep PyTorch's shapes
/// (`[out, in, kh, kw]` for a convolution, `[c]` for BatchNorm).
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    /// Floats the storage block holds (at least `count`; a recycled block may be larger).
    private let capacity: Int

    /// A zero-filled tensor of `shape`.
    public init(_ shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        TensorTraffic.bytes &+= count * 4
        (data, capacity) = TensorPool.block(floats: max(1, count), zeroed: true)
    }

    /// A tensor of `shape` whose storage is not cleared, for outputs that are written in full
    /// before they are read (clearing them was a memory pass per layer for nothing).
    init(uninitialized shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        TensorTraffic.bytes &+= count * 4
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

/// How many threads the numeric kernels use (our own loops and OpenBLAS). Work is split into
/// a fixed number of chunks and every reduction sums in a fixed order, so results depend only on
/// the inputs, never on scheduling.
public enum ComputeThreads {
    nonisolated(unsafe) private static var current = 1

    public static var count: Int { current }

    /// Sets the thread count for our kernels and OpenBLAS (at least 1).
    public static func set(_ threads: Int) {
        current = max(1, threads)
        setBLASThreads(current)
    }
}

/// The instruction set of the C kernels: 0 generic x86-64, 1 AVX2+FMA, 2 AVX-512VL (32 vector
/// registers, wider register blocks). The default is the best the CPU has; tests and benchmarks
/// pick lower ones to compare.
public enum KernelInstructionSet {
    /// Uses `level` (nil or above what the CPU has: the best it has); returns the level in use.
    @discardableResult
    public static func use(_ level: Int?) -> Int { Int(hrtem_kernels_use(Int32(level ?? -1))) }

    public static var current: Int { Int(hrtem_kernels_level()) }

    public static let names = ["generic", "avx2", "avx512"]
}

/// Runs `body` over `0..<count` split into contiguous chunks, one per thread, in parallel.
@inline(__always)
func parallelFor(_ count: Int, minimumPerChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let threads = min(ComputeThreads.count, max(1, count / max(1, minimumPerChunk)))
    if threads <= 1 || count <= 1 {
        body(0..<count)
        return
    }
    DispatchQueue.concurrentPerform(iterations: threads) { chunk in
        let start = count * chunk / threads
        let end = count * (chunk + 1) / threads
        if start < end { body(start..<end) }
    }
}

/// Runs `body(chunk, range)` over `0..<count` split into at most `ComputeThreads.count`
/// contiguous chunks (chunk ids 0, 1, ... in order), in parallel. The split depends only on
/// `count` and the thread count, so per-chunk partial sums reduced in chunk order are
/// deterministic.
func parallelChunks(_ count: Int, _ body: (Int, Range<Int>) -> Void) {
    let chunks = chunkCount(count)
    if chunks <= 1 {
        body(0, 0..<count)
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        body(chunk, (count * chunk / chunks)..<(count * (chunk + 1) / chunks))
    }
}

func chunkCount(_ count: Int) -> Int { max(1, min(ComputeThreads.count, count)) }

/// Sets how many threads OpenBLAS uses for the calls that follow (1 while our own threads
/// each run their own sgemm).
func setBLASThreads(_ threads: Int) {
    if threads != currentBLASThreads {
        currentBLASThreads = threads
        openblas_set_num_threads(Int32(threads))
    }
}
nonisolated(unsafe) private var currentBLASThreads = 0

/// C = alpha * op(A) * op(B) + beta * C, row-major, through OpenBLAS.
@inline(__always)
func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Bytes of tensor storage allocated since `reset` (a benchmark's measure of memory traffic:
/// every tensor is written once and read at least once).
public enum TensorTraffic {
    nonisolated(unsafe) static var bytes = 0
    public static var bytesAllocated: Int { bytes }
    public static func reset() { bytes = 0 }
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
    /// Idle blocks (capacity in floats), least recently recycled first.
    nonisolated(unsafe) private static var idle: [(floats: Int, block: UnsafeMutablePointer<Float>)] = []
    nonisolated(unsafe) private static var idleBytes = 0
    nonisolated(unsafe) private static var liveBytes = 0
    nonisolated(unsafe) private static var peakLiveBytes = 0
    private static let lock = NSLock()

    /// A block of at least `floats` (zero-filled over `floats` when `zeroed`) and its capacity.
    static func block(floats: Int, zeroed: Bool) -> (UnsafeMutablePointer<Float>, Int) {
        guard floats >= minimumFloats else {
            guard let raw = zeroed ? calloc(floats, 4) : malloc(floats * 4) else { fatalError("out of memory for a tensor of \(floats) floats") }
            return (raw.bindMemory(to: Float.self, capacity: floats), floats)
        }
        lock.lock()
        var reused: (floats: Int, block: UnsafeMutablePointer<Float>)?
        var best: Int?
        for index in idle.indices.reversed() where idle[index].floats >= floats && idle[index].floats <= largestOversize * floats {
            if best == nil || idle[index].floats < idle[best!].floats { best = index }
            if idle[index].floats == floats { break }
        }
        if let best {
            reused = idle.remove(at: best)
            idleBytes -= reused!.floats * 4
        }
        let capacity = reused?.floats ?? mappedBytes(floats: floats) / 4
        liveBytes += capacity * 4
        peakLiveBytes = max(peakLiveBytes, liveBytes)
        lock.unlock()
        if let reused {
            if zeroed { reused.block.update(repeating: 0, count: floats) }
            return (reused.block, capacity)
        }
        return (mapBlock(floats: capacity), capacity)
    }

    static func recycle(_ block: UnsafeMutablePointer<Float>, capacity floats: Int) {
        guard floats >= minimumFloats else { free(block); return }
        lock.lock()
        liveBytes -= floats * 4
        idle.append((floats, block))
        idleBytes += floats * 4
        var evicted: [(floats: Int, block: UnsafeMutablePointer<Float>)] = []
        while idleBytes > max(minimumCapacityBytes, peakLiveBytes), !idle.isEmpty {
            let oldest = idle.removeFirst()
            idleBytes -= oldest.floats * 4
            evicted.append(oldest)
        }
        lock.unlock()
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
