import Foundation

/// A value several threads share, read and written only while holding its lock (`Mutex` from
/// the Synchronization module needs macOS 15; the package supports macOS 13).
public final class Locked<State: Sendable>: @unchecked Sendable {
    // Sendable by hand: `state` is reached only inside `withLock`, under `lock`, and is itself
    // Sendable, so what a caller takes out is safe to use on any thread.
    private let lock = NSLock()
    private var state: State

    public init(_ state: State) { self.state = state }

    /// Runs `body` with exclusive access to the value.
    @discardableResult
    public func withLock<Result>(_ body: (inout State) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&state)
    }

    /// A copy of the value.
    public var value: State { withLock { $0 } }
}
