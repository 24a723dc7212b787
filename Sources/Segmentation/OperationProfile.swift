import Foundation

/// Wall time per operation of training steps, summed while `enabled` (for
/// `bench-trainer --profile`: where a step's time goes, layer by layer). Off, it costs one branch
/// per layer call.
public enum OperationProfile {
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) private static var totals: [String: (nanoseconds: UInt64, calls: Int)] = [:]
    nonisolated(unsafe) private static var order: [String] = []

    @inline(__always) @discardableResult
    static func measure<T>(_ name: @autoclosure () -> String, _ body: () -> T) -> T {
        guard enabled else { return body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = body()
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        let key = name()
        if totals[key] == nil { order.append(key) }
        totals[key, default: (0, 0)].nanoseconds += elapsed
        totals[key, default: (0, 0)].calls += 1
        return result
    }

    /// (operation, total seconds, calls) in first-seen order.
    public static var entries: [(name: String, seconds: Double, calls: Int)] {
        order.map { ($0, Double(totals[$0]!.nanoseconds) / 1e9, totals[$0]!.calls) }
    }

    public static func reset() { totals = [:]; order = [] }
}
