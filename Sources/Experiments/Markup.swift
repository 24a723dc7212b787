import Foundation
import Micrograph

/// Text made safe for XML/HTML content and attribute values (& < > " ').
public func escapeMarkup(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.count)
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default:
            // Control characters other than tab/newline are not allowed in XML 1.0.
            if let scalar = character.unicodeScalars.first, character.unicodeScalars.count == 1,
               scalar.value < 0x20, scalar != "\t", scalar != "\n", scalar != "\r" {
                out += "\u{FFFD}"
            } else {
                out.append(character)
            }
        }
    }
    return out
}

/// One CSV field per RFC 4180: quoted when it holds a comma, quote, or line break.
func csvField(_ text: String) -> String {
    if text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
    return text
}

func csvLine(_ fields: [String]) -> String { fields.map(csvField).joined(separator: ",") + "\n" }

/// A number for a CSV: the shortest text that reads back to the same Double.
func csvNumber(_ value: Double?) -> String { value.map { "\($0)" } ?? "" }

/// A number for people: fixed decimals.
func fixed(_ value: Double, _ decimals: Int = 3) -> String { String(format: "%.\(decimals)f", value) }

/// A number inside SVG geometry: two decimals, no exponent.
func coordinate(_ value: Double) -> String { String(format: "%.2f", value) }

/// Safe file-name part: letters, digits, dot, dash, underscore; anything else becomes `_`.
func fileNamePart(_ text: String) -> String {
    String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") ? $0 : "_" })
}

/// A shell word: single-quoted unless it is plainly safe.
public func shellQuote(_ word: String) -> String {
    let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%_+=:,./-")
    if !word.isEmpty && word.unicodeScalars.allSatisfy({ safe.contains($0) }) { return word }
    return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// A colour scale for scores in [0, 1]: viridis's anchor colours, linearly interpolated.
enum ScoreColour {
    static let anchors: [(Double, Double, Double)] = [
        (68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37),
    ]

    /// `#rrggbb` for `value` clamped to [0, 1].
    static func hex(_ value: Double) -> String {
        let t = Swift.min(1, Swift.max(0, value.isFinite ? value : 0)) * Double(anchors.count - 1)
        let lower = Swift.min(Int(t), anchors.count - 2)
        let f = t - Double(lower)
        let a = anchors[lower], b = anchors[lower + 1]
        func mix(_ x: Double, _ y: Double) -> Int { Int((x + (y - x) * f).rounded()) }
        return String(format: "#%02x%02x%02x", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// Whether text on this colour should be dark (the light end of the scale).
    static func wantsDarkText(_ value: Double) -> Bool { value > 0.55 }
}

/// hrtem's version, under a name no type's property shadows.
let hrtemBuildVersion: String = hrtemVersion
