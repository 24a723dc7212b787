import Foundation
import Micrograph

/// A DM (or any) tag path that fills a field: `ImageList.2.ImageTags.Microscope Info.Stage
/// Position.Stage Alpha=tilt`. A path starting with `ImageTags.` is looked up under the
/// frame's own image (`ImageList.<n>.ImageTags.`), so one mapping serves every file.
public struct TagMapping: Sendable, Equatable {
    public var path: String
    public var field: String
    /// Multiplies a numeric tag (e.g. volts to kV).
    public var scale: Double

    public init(path: String, field: String, scale: Double = 1) {
        self.path = path
        self.field = field.lowercased()
        self.scale = scale
    }

    /// Parses `path=field`.
    /// - Throws: `FieldError` when there is no `=` or a side is empty.
    public init(parsing text: String) throws {
        guard let equals = text.lastIndex(of: "=") else { throw FieldError("--tag '\(text)': expected 'tag path=field'") }
        let path = text[..<equals].trimmingCharacters(in: .whitespaces)
        let field = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        guard !path.isEmpty, !field.isEmpty else { throw FieldError("--tag '\(text)': expected 'tag path=field'") }
        self.init(path: path, field: field)
    }

    /// The built-in mapping from DM tags to fields (the study's fields the reader already
    /// fills from the calibration and tags: pixel_scale, magnification, exposure, date).
    public static let builtIn: [TagMapping] = [
        TagMapping(path: "ImageTags.Microscope Info.Voltage", field: "voltage", scale: 1e-3),
        TagMapping(path: "ImageTags.Acquisition.Device.Name", field: "camera"),
        TagMapping(path: "ImageTags.Microscope Info.Camera", field: "camera"),
        TagMapping(path: "ImageTags.Acquisition.Parameters.High Level.Binning.1", field: "binning"),
        TagMapping(path: "ImageTags.Acquisition.Parameters.High Level.Binning", field: "binning"),
        TagMapping(path: "ImageTags.Session Info.Operator", field: "operator"),
        TagMapping(path: "ImageTags.Microscope Info.Operator", field: "operator"),
        TagMapping(path: "ImageTags.Session Info.Specimen", field: "specimen"),
        TagMapping(path: "ImageTags.Microscope Info.Specimen", field: "specimen"),
        TagMapping(path: "ImageTags.Microscope Info.Stage Position.Stage Alpha", field: "tilt"),
        TagMapping(path: "ImageTags.DataBar.Acquisition Time", field: "acquisition_time"),
    ]

    /// The tag's value in a file (as text, numbers scaled), nil when absent.
    func value(in header: MicrographHeader) -> (path: String, text: String)? {
        let resolved = path.hasPrefix("ImageTags.") ? "ImageList.\(header.imageIndex).\(path)" : path
        guard let tag = header.tags.value(at: resolved) else { return nil }
        switch tag {
        case .text(let text):
            return text.isEmpty ? nil : (resolved, text)
        case .array(let array):
            return array.values?.first.map { (resolved, FrameListing.number($0 * scale)) }
        default:
            return tag.doubleValue.map { (resolved, FrameListing.number($0 * scale)) }
        }
    }
}

/// A file-name template such as
/// `{date:yyyyMMdd}_{material}_{support}_{magnification}kx_{dose_rate}e_{exposure}s_{index}`:
/// `{field}` takes the text up to what follows it, `{date:FORMAT}` a date in that format
/// (`yyyy`, `yy`, `MM`, `dd`), `{index}` and `{_}` any text that is not stored; everything
/// else must match literally. Numbers may use `p` for the decimal point (`0p1596`), as the
/// study's names do. The file's extension is not part of the match.
public struct NamePattern: Sendable, Equatable, CustomStringConvertible {
    enum Piece: Equatable {
        case literal(String)
        case field(String)
        case date(format: String)
        case ignored
    }

    public let text: String
    let pieces: [Piece]

    public var description: String { text }

    /// - Throws: `FieldError` for an unclosed brace or an empty placeholder.
    public init(_ text: String) throws {
        self.text = text
        var pieces: [Piece] = []
        var literal = ""
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            if c == "{" {
                guard let close = text[index...].firstIndex(of: "}") else {
                    throw FieldError("name pattern '\(text)': unclosed '{'")
                }
                let name = String(text[text.index(after: index)..<close]).trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty else { throw FieldError("name pattern '\(text)': empty '{}'") }
                if !literal.isEmpty { pieces.append(.literal(literal)); literal = "" }
                if name.lowercased().hasPrefix("date:") {
                    pieces.append(.date(format: String(name.dropFirst(5))))
                } else if ["index", "_", "*"].contains(name.lowercased()) {
                    pieces.append(.ignored)
                } else {
                    pieces.append(.field(name.lowercased()))
                }
                index = text.index(after: close)
            } else {
                literal.append(c)
                index = text.index(after: index)
            }
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        self.pieces = pieces
    }

    /// The fields the pattern names (`date` for a date placeholder).
    public var fieldNames: [String] {
        pieces.compactMap {
            switch $0 {
            case .field(let name): name
            case .date: "date"
            default: nil
            }
        }
    }

    /// The raw text of each placeholder in `fileName` (extension dropped), nil when the name
    /// does not match. Placeholders take as little as they can (the next literal ends them),
    /// the last one the rest.
    public func match(_ fileName: String) -> [String: String]? {
        let stem = (fileName as NSString).deletingPathExtension
        var values: [String: String] = [:]
        return match(Array(stem), at: 0, piece: 0, values: &values) ? values : nil
    }

    private func match(_ characters: [Character], at position: Int, piece: Int, values: inout [String: String]) -> Bool {
        guard piece < pieces.count else { return position == characters.count }
        switch pieces[piece] {
        case .literal(let literal):
            let wanted = Array(literal)
            guard position + wanted.count <= characters.count,
                  Array(characters[position..<position + wanted.count]) == wanted else { return false }
            return match(characters, at: position + wanted.count, piece: piece + 1, values: &values)
        case .field, .date, .ignored:
            // Shortest first, so `{a}_{b}` splits at the first '_'.
            var end = position + 1
            while end <= characters.count {
                var attempt = values
                let taken = String(characters[position..<end])
                switch pieces[piece] {
                case .field(let name): attempt[name] = taken
                case .date(let format):
                    guard let iso = Self.isoDate(taken, format: format) else { end += 1; continue }
                    attempt["date"] = iso
                default: break
                }
                if match(characters, at: end, piece: piece + 1, values: &attempt) {
                    values = attempt
                    return true
                }
                end += 1
            }
            return false
        }
    }

    /// `yyyyMMdd`-style text to ISO `yyyy-mm-dd`, nil when it does not fit the format.
    static func isoDate(_ text: String, format: String) -> String? {
        let characters = Array(text), pattern = Array(format)
        guard characters.count == pattern.count else { return nil }
        var year = "", month = "", day = ""
        for (c, p) in zip(characters, pattern) {
            switch p {
            case "y": guard c.isASCIIDigit else { return nil }; year.append(c)
            case "M": guard c.isASCIIDigit else { return nil }; month.append(c)
            case "d": guard c.isASCIIDigit else { return nil }; day.append(c)
            default: guard c == p else { return nil }
            }
        }
        if year.count == 2 { year = "20" + year }
        guard year.count == 4, month.count == 2, day.count == 2 else { return nil }
        let iso = "\(year)-\(month)-\(day)"
        return StudyDate.isValidISO(iso) ? iso : nil
    }
}
