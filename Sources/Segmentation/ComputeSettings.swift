import CBLAS
import CKernels
import Dispatch
import Foundation
import Micrograph

/// How the numeric kernels run: how many threads, which instruction set, which convolution path,
/// and where per-operation times go. A network carries its own (`ResidualUNet.compute`) and hands
/// it to every layer call, so networks trained side by side in one process (the matrix runner's
/// parallel units, each with its own `--threads`) never change each other's settings.
///
/// Work is split into a fixed number of chunks (from `threads`) and every reduction sums in a
/// fixed order, so results depend only on the inputs and these settings, never on scheduling.
public struct ComputeSettings: Sendable {
    private var storedThreads: Int
    private var storedInstructionSet: KernelInstructionSet

    /// Threads of the kernels (at least 1). OpenBLAS runs single-threaded inside each of them.
    public var threads: Int {
        get { storedThreads }
        set { storedThreads = max(1, newValue) }
    }

    /// The C kernels' instruction set; one the CPU lacks is replaced by the best it has.
    public var instructionSet: KernelInstructionSet {
        get { storedInstructionSet }
        set { storedInstructionSet = min(newValue, .best) }
    }

    /// in x out products at or below which a k x k convolution's backward runs direct. Direct
    /// beats im2col + sgemm at every width of the study's network (3 to 4x at 24 -> 8 and
    /// 48 -> 16 channels: the im2col columns cost more memory traffic than the products), so the
    /// default has no limit; tests lower it to 0 to exercise the im2col path.
    public var directLimit: Int

    /// Where the wall time of each operation of a training step is summed, when set
    /// (`bench-trainer --profile`). Unset, profiling costs one branch per layer call.
    public var profile: OperationProfile?

    public init(threads: Int = 1, instructionSet: KernelInstructionSet = .best, directLimit: Int = .max,
                profile: OperationProfile? = nil) {
        storedThreads = max(1, threads)
        storedInstructionSet = min(instructionSet, .best)
        self.directLimit = directLimit
        self.profile = profile
    }

    /// The level the C kernels take as their first argument.
    @inline(__always) var level: Int32 { Int32(storedInstructionSet.rawValue) }

    /// Runs `body` over `0..<count` split into contiguous chunks, one per thread, in parallel.
    @inline(__always)
    func parallelFor(_ count: Int, minimumPerChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, max(1, count / max(1, minimumPerChunk)))
        if chunks <= 1 || count <= 1 {
            body(0..<count)
            return
        }
        concurrentPerform(iterations: chunks) { chunk in
            let start = count * chunk / chunks
            let end = count * (chunk + 1) / chunks
            if start < end { body(start..<end) }
        }
    }

    /// Runs `body(chunk, range)` over `0..<count` split into `chunkCount(count)` contiguous
    /// chunks (chunk ids 0, 1, ... in order), in parallel. The split depends only on `count` and
    /// the thread count, so per-chunk partial sums reduced in chunk order are deterministic.
    func parallelChunks(_ count: Int, _ body: (Int, Range<Int>) -> Void) {
        let chunks = chunkCount(count)
        if chunks <= 1 {
            body(0, 0..<count)
            return
        }
        concurrentPerform(iterations: chunks) { chunk in
            body(chunk, (count * chunk / chunks)..<(count * (chunk + 1) / chunks))
        }
    }

    func chunkCount(_ count: Int) -> Int { max(1, min(threads, count)) }

    /// `body`'s result, its wall time added to `profile` under `name` when profiling.
    @inline(__always) @discardableResult
    func measure<T>(_ name: @autoclosure () -> String, _ body: () -> T) -> T {
        guard let profile else { return body() }
        return profile.measure(name(), body)
    }
}

/// The instruction set of the C kernels: generic x86-64, AVX2+FMA, or AVX-512VL (32 vector
/// registers, wider register blocks). Tests and benchmarks pick lower ones than the CPU's best
/// to compare them.
public enum KernelInstructionSet: Int, CaseIterable, Comparable, Sendable {
    case generic = 0, avx2 = 1, avx512 = 2

    /// The best this CPU runs.
    public static var best: KernelInstructionSet { KernelInstructionSet(rawValue: Int(hrtem_kernels_best_level())) ?? .generic }

    /// Every level this CPU runs, lowest first.
    public static var available: [KernelInstructionSet] { allCases.filter { $0 <= best } }

    public var name: String { ["generic", "avx2", "avx512"][rawValue] }

    public init?(name: String) {
        guard let found = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = found
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// OpenBLAS's thread count is process-wide, so it is set to 1 once, before the first sgemm, and
/// never changed: our own threads each run their own sgemm calls (one image per chunk). A batch
/// smaller than the thread count then leaves threads idle on the im2col path, which only layers
/// the direct kernels do not cover (kernels over 7 x 7, or `directLimit` lowered) take.
private let openBLASSingleThreaded: Void = openblas_set_num_threads(1)

/// C = alpha * op(A) * op(B) + beta * C, row-major, through OpenBLAS (single-threaded).
@inline(__always)
func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    _ = openBLASSingleThreaded
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Wall time per operation of training steps, summed across the steps run with it (for
/// `bench-trainer --profile`: where a step's time goes, layer by layer). Thread-safe.
public final class OperationProfile: Sendable {
    private struct Totals: Sendable {
        var byName: [String: (nanoseconds: UInt64, calls: Int)] = [:]
        var order: [String] = []
    }
    private let totals = Locked(Totals())

    public init() {}

    @discardableResult
    func measure<T>(_ name: String, _ body: () -> T) -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = body()
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        totals.withLock { totals in
            if totals.byName[name] == nil { totals.order.append(name) }
            totals.byName[name, default: (0, 0)].nanoseconds += elapsed
            totals.byName[name, default: (0, 0)].calls += 1
        }
        return result
    }

    /// (operation, total seconds, calls) in first-seen order.
    public var entries: [(name: String, seconds: Double, calls: Int)] {
        let totals = totals.value
        return totals.order.map { ($0, Double(totals.byName[$0]!.nanoseconds) / 1e9, totals.byName[$0]!.calls) }
    }

    public func reset() { totals.withLock { $0 = Totals() } }
}
