import Foundation
import Micrograph

/// When and how long to wait before trying a transfer again.
///
/// Retried: timeouts, resets and other transient network failures, HTTP 408, 429 and 5xx.
/// The delay before attempt `n + 1` is `min(maxDelay, baseDelay * 2^(n-1))` scaled by a jitter
/// factor drawn uniformly from [0.5, 1) (a seeded stream per file, so the same seed gives the same
/// schedule), and never shorter than the server's `Retry-After` (capped at `maxRetryAfter`).
public struct RetryPolicy: Sendable, Equatable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double
    public var maxRetryAfter: Double
    public var seed: UInt64

    public init(maxAttempts: Int = 6, baseDelay: Double = 1, maxDelay: Double = 60,
                maxRetryAfter: Double = 300, seed: UInt64 = 0x4852_5445_4D) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxRetryAfter = maxRetryAfter
        self.seed = seed
    }

    public static func isRetryable(httpStatus: Int) -> Bool {
        httpStatus == 408 || httpStatus == 429 || (500...599).contains(httpStatus)
    }

    /// Seconds to wait after failed attempt `attempt` (1-based) of the file with `streamIndex`.
    public func delay(afterAttempt attempt: Int, streamIndex: UInt64, retryAfter: Double?) -> Double {
        var random = SplitMix64(seed: seed).derived(streamIndex).derived(UInt64(attempt))
        let exponential = min(maxDelay, baseDelay * pow(2, Double(max(0, attempt - 1))))
        let jittered = exponential * (0.5 + 0.5 * random.nextUnitDouble())
        guard let retryAfter else { return jittered }
        return max(jittered, min(retryAfter, maxRetryAfter))
    }
}

/// Parses a `Retry-After` value: delta-seconds, or an HTTP date (then seconds from `now`).
/// Returns nil when it is neither.
public func parseRetryAfter(_ value: String, now: Date = Date()) -> Double? {
    let trimmed = value.trimmingCharacters(in: .whitespaces)
    if let seconds = Double(trimmed), seconds >= 0 { return seconds }
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "GMT")
    for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
        formatter.dateFormat = format
        if let date = formatter.date(from: trimmed) { return max(0, date.timeIntervalSince(now)) }
    }
    return nil
}

/// A stable 64-bit index for a string (FNV-1a), used to give each file its own jitter stream.
func stableIndex(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return hash
}
