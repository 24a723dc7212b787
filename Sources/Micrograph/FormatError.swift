import Foundation

/// A file that could not be read or written, with enough context to act on: which file, where
/// in it (byte offset for binary formats, line and column for text), what was expected, what
/// was found.
public struct FormatError: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var offset: Int?
    public var line: Int?
    public var column: Int?
    public var message: String

    public init(file: String, offset: Int? = nil, line: Int? = nil, column: Int? = nil, _ message: String) {
        self.file = file
        self.offset = offset
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" + (column.map { ":\($0)" } ?? "") }
        if let offset { location += " at byte \(offset)" }
        return "\(location): \(message)"
    }
}
