import Foundation
import Micrograph

/// A token bucket shared by every request to one mirror: `burst` requests may go at once, then
/// one every `1 / ratePerSecond` seconds. Thread-safe; `acquire()` blocks the calling thread.
///
/// Dryad allows anonymous clients about 30 requests a minute: `RateLimiter(requestsPerMinute: 30)`.
public final class RateLimiter: Sendable {
    public let ratePerSecond: Double
    public let burst: Double
    /// Tokens in the bucket and the clock reading they were counted at.
    private let bucket: Locked<(tokens: Double, last: Double)>
    private let clock: @Sendable () -> Double
    private let sleeper: @Sendable (Double) -> Void

    /// - Parameters:
    ///   - clock: seconds on a monotonic clock (injectable for tests).
    ///   - sleep: waits the given seconds (injectable for tests).
    public init(ratePerSecond: Double, burst: Double = 1,
                clock: @escaping @Sendable () -> Double = monotonicSeconds,
                sleep: @escaping @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }) {
        precondition(ratePerSecond > 0 && burst >= 1)
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        self.clock = clock
        self.sleeper = sleep
        bucket = Locked((tokens: burst, last: clock()))
    }

    public convenience init(requestsPerMinute: Double, burst: Double = 1) {
        self.init(ratePerSecond: requestsPerMinute / 60, burst: burst)
    }

    /// Takes one token, waiting until one is available. Returns the seconds waited.
    @discardableResult
    public func acquire() -> Double {
        var waited = 0.0
        while true {
            let wait: Double? = bucket.withLock { bucket in
                let now = clock()
                bucket.tokens = min(burst, bucket.tokens + (now - bucket.last) * ratePerSecond)
                bucket.last = now
                if bucket.tokens >= 1 {
                    bucket.tokens -= 1
                    return nil
                }
                return (1 - bucket.tokens) / ratePerSecond
            }
            guard let wait else { return waited }
            sleeper(wait)
            waited += wait
        }
    }
}

/// Seconds since an arbitrary origin on a clock that never goes backwards.
@Sendable public func monotonicSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}
