import Foundation

/// JSON whose bytes depend only on the value: keys sorted, `/` not escaped, no platform-chosen
/// whitespace beyond the two fixed styles. Ids are hashes of these bytes (dataset versions,
/// plan units, training checkpoints), so every module encodes what it hashes or writes for
/// people through here, and neither style may ever change.
public enum CanonicalJSON {
    /// One line, no spaces: what ids hash and what catalog columns hold.
    public static func compact<T: Encodable>(_ value: T) throws -> Data {
        try encoder(pretty: false).encode(value)
    }

    /// `compact` as a string.
    public static func compactString<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try compact(value), as: UTF8.self)
    }

    /// Indented by two spaces, no trailing newline (the bytes a dataset version id hashes).
    public static func pretty<T: Encodable>(_ value: T) throws -> Data {
        try encoder(pretty: true).encode(value)
    }

    /// `pretty` ending in a newline: the form of JSON files people read (model cards, plans,
    /// reports, recorded results).
    public static func file<T: Encodable>(_ value: T) throws -> Data {
        var data = try pretty(value)
        data.append(0x0A)
        return data
    }

    private static func encoder(pretty: Bool) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                                          : [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

/// A decoding error as one line: where in the JSON and what was wrong.
public func describeDecodingError(_ error: Error) -> String {
    guard let decodingError = error as? DecodingError else { return "\(error)" }
    func path(_ context: DecodingError.Context) -> String {
        let joined = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        return joined.isEmpty ? "top level" : joined
    }
    switch decodingError {
    case .keyNotFound(let key, let context): return "missing key \"\(key.stringValue)\" at \(path(context))"
    case .typeMismatch(_, let context): return "wrong type at \(path(context)): \(context.debugDescription)"
    case .valueNotFound(_, let context): return "missing value at \(path(context))"
    case .dataCorrupted(let context): return "\(context.debugDescription) at \(path(context))"
    @unknown default: return "\(error)"
    }
}

/// Decodes a JSON file.
/// - Throws: `FormatError` naming the file when it cannot be read, and where in the JSON it
///   differs from `T` (`what` says what the file should be, e.g. "a model card").
public func readJSONFile<T: Decodable>(_ type: T.Type, from url: URL, what: String) throws -> T {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw FormatError(file: url.path, "cannot read \(what): \(error.localizedDescription)")
    }
    do { return try JSONDecoder().decode(T.self, from: data) } catch {
        throw FormatError(file: url.path, "not \(what): \(describeDecodingError(error))")
    }
}
