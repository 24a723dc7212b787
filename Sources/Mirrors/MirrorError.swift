import Foundation

/// Everything that can go wrong in the mirrors module, with the file or URL it concerns, the
/// attempt, the HTTP status and the byte offset where they apply, and what was expected; the
/// fields are there for callers to act on (an expired link is a 401, 403 or 410), the text is
/// what the CLI prints.
public enum MirrorError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A listing, export or argument named a path that could escape its folder.
    case unsafePath(String, String)
    /// A mirror definition that cannot be used (name, file, what is wrong).
    case badDefinition(String, String)
    case unknownMirror(String, known: [String])
    /// A reply that could not be parsed (URL or file, what was wrong).
    case badListing(String, String)
    /// The server answered with an HTTP status that is not retried, or retries ran out;
    /// `offset` is the byte the last request asked from (`Range`), 0 for the whole file.
    case http(url: String, status: Int, attempts: Int, offset: Int64 = 0)
    /// libcurl failed (timeout, reset, DNS...) or the reply ended early, and retries ran out;
    /// `offset` is how many bytes of the file were kept, where the next run resumes.
    case network(url: String, message: String, attempts: Int, offset: Int64 = 0)
    /// The bytes did not match what the mirror or the catalog says; the file was quarantined.
    case verification(key: String, expected: String, found: String, quarantinedAt: String)
    /// A local file-system failure (file, what failed, and the byte offset in the file when
    /// reading or writing it failed).
    case io(String, String, offset: Int64? = nil)
    /// Another hrtem process is fetching the same file right now.
    case busy(String)

    public var description: String {
        switch self {
        case let .unsafePath(path, why): return "unsafe path '\(path)': \(why)"
        case let .badDefinition(name, why): return "mirror \(name): \(why)"
        case let .unknownMirror(name, known):
            return "unknown mirror '\(name)'; known mirrors: \(known.joined(separator: ", "))"
        case let .badListing(source, why): return "\(source): \(why)"
        case let .http(url, status, attempts, offset):
            return "\(url): HTTP \(status)\(httpReason(status)) after \(attempts) attempt\(attempts == 1 ? "" : "s")"
                + (offset > 0 ? " (asking from byte \(offset))" : "")
        case let .network(url, message, attempts, offset):
            return "\(url): \(message) after \(attempts) attempt\(attempts == 1 ? "" : "s")"
                + (offset > 0 ? "; \(offset) bytes kept, the next run resumes from there" : "")
        case let .verification(key, expected, found, quarantine):
            return "\(key): content does not match (expected \(expected), got \(found)); quarantined at \(quarantine)"
        case let .io(file, why, offset):
            return "\(file)\(offset.map { " at byte \($0)" } ?? ""): \(why)"
        case let .busy(key): return "\(key): another hrtem process is fetching this file"
        }
    }
}

private func httpReason(_ status: Int) -> String {
    switch status {
    case 401: return " (unauthorized: set the mirror's token variable, e.g. DRYAD_TOKEN)"
    case 403: return " (forbidden)"
    case 404: return " (not found on the mirror)"
    case 416: return " (range not satisfiable)"
    case 429: return " (too many requests)"
    case 500...599: return " (server error)"
    default: return ""
    }
}
