/// Calendar dates as the catalog stores them (ISO `yyyy-mm-dd`, so text order is date order)
/// and as the study writes them (`MM/DD/YY`).
public enum StudyDate {
    /// `08/26/21` (also `8/26/21`, `08/26/2021`) -> `2021-08-26`. Two-digit years are 20YY
    /// (the study ran 2021-2023). Nil when not a real calendar date.
    public static func iso(fromStudy text: String) -> String? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }),
              parts[0].count <= 2, parts[1].count <= 2, parts[2].count == 2 || parts[2].count == 4,
              let month = Int(parts[0]), let day = Int(parts[1]), var year = Int(parts[2]) else { return nil }
        if parts[2].count == 2 { year += 2000 }
        return iso(year: year, month: month, day: day)
    }

    /// Accepts ISO `2021-08-26` or the study's `08/26/21`; returns ISO, nil when neither.
    public static func iso(from text: String) -> String? {
        isValidISO(text) ? text : iso(fromStudy: text)
    }

    /// Whether `text` is exactly `yyyy-mm-dd` and a real calendar date.
    public static func isValidISO(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCIIDigit) }),
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]) else { return false }
        return iso(year: year, month: month, day: day) != nil
    }

    /// `yyyy-mm-dd` for a valid Gregorian date, else nil.
    public static func iso(year: Int, month: Int, day: Int) -> String? {
        guard (1...9999).contains(year), (1...12).contains(month), day >= 1 else { return nil }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day <= lengths[month - 1] else { return nil }
        return String(format4: year) + "-" + String(format2: month) + "-" + String(format2: day)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    init(format2 value: Int) { self = value < 10 ? "0\(value)" : "\(value)" }
    init(format4 value: Int) {
        let text = "\(value)"
        let padding = Swift.String(repeating: "0", count: Swift.max(0, 4 - text.count))
        self = padding + text
    }
}
