import Foundation
import Micrograph

/// The study's file-name convention, parsed and formatted:
/// `YYYYMMDD_<Material>_<Support>_<Mag>kx_<R>e_<T>s[_<extra>...]_<NN>.dm3`.
///
/// The date prefix and the support may be missing (both occur in the study), `kX` occurs for
/// `kx`, `p` is the decimal point (`0p1596` = 0.1596), and extra tokens such as `2k` (a
/// 2k-binned frame) may sit before the sequence number. `<R>` is the dose rate in e/A^2/s and
/// `<T>` the exposure in s, so the dose is R x T e/A^2; the magnification (kx) exists only here.
/// `fileName` formats the fields back; for every name of the study's table,
/// `StudyFileName(parsing: name).fileName == name`.
public struct StudyFileName: Equatable, Sendable {
    /// ISO `yyyy-mm-dd` from the `YYYYMMDD` prefix, nil when the name has none.
    public var date: String?
    public var material: String
    /// The support's code in the name (`UTC`, `SiN`), nil when the name has none.
    public var support: String?
    public var magnificationKx: Double
    /// e/A^2/s.
    public var doseRate: Double
    /// Seconds.
    public var exposureSeconds: Double
    /// Tokens between the exposure and the sequence number, e.g. `["2k"]`.
    public var extras: [String]
    public var sequence: Int
    /// Digits the sequence number is written with (zero-padded).
    public var sequenceWidth: Int
    /// How the magnification unit is spelled (`kx` or `kX`), kept so names round-trip.
    public var magnificationUnit: String
    /// Without the dot: `dm3`, `dm4`, `tif`.
    public var fileExtension: String

    /// Total dose, e/A^2 (R x T).
    public var dose: Double { doseRate * exposureSeconds }

    public init(date: String? = nil, material: String, support: String? = nil, magnificationKx: Double,
                doseRate: Double, exposureSeconds: Double, extras: [String] = [], sequence: Int,
                sequenceWidth: Int = 2, magnificationUnit: String = "kx", fileExtension: String = "dm3") {
        self.date = date
        self.material = material
        self.support = support
        self.magnificationKx = magnificationKx
        self.doseRate = doseRate
        self.exposureSeconds = exposureSeconds
        self.extras = extras
        self.sequence = sequence
        self.sequenceWidth = sequenceWidth
        self.magnificationUnit = magnificationUnit
        self.fileExtension = fileExtension
    }

    /// - Throws: `FormatError` (file = the name, column = 1-based character position of the
    ///   offending token) when the name does not follow the convention.
    public init(parsing name: String) throws {
        func fail(_ message: String, at column: Int? = nil) -> FormatError {
            FormatError(file: name, column: column, "not a study file name (\(message)); expected "
                        + "YYYYMMDD_<Material>_<Support>_<Mag>kx_<R>e_<T>s_<NN>.dm3")
        }
        guard let dot = name.lastIndex(of: "."), name.index(after: dot) != name.endIndex else {
            throw fail("no file extension")
        }
        fileExtension = String(name[name.index(after: dot)...])
        let stem = name[..<dot]
        var tokens: [(text: Substring, column: Int)] = []
        var column = 1
        for piece in stem.split(separator: "_", omittingEmptySubsequences: false) {
            tokens.append((piece, column))
            column += piece.count + 1
        }
        var position = 0
        if let first = tokens.first, first.text.count == 8, first.text.allSatisfy(\.isASCIIDigit) {
            let text = first.text
            guard let year = Int(text.prefix(4)), let month = Int(text.dropFirst(4).prefix(2)),
                  let day = Int(text.suffix(2)), let iso = StudyDate.iso(year: year, month: month, day: day) else {
                throw fail("'\(text)' is not a date", at: first.column)
            }
            date = iso
            position = 1
        } else {
            date = nil
        }
        guard position < tokens.count, let materialToken = Optional(tokens[position]),
              !materialToken.text.isEmpty, materialToken.text.allSatisfy({ $0.isLetter }) else {
            throw fail("expected the material", at: tokens[min(position, tokens.count - 1)].column)
        }
        material = String(materialToken.text)
        position += 1

        guard let magnificationIndex = tokens.indices.dropFirst(position).first(where: {
            Self.magnification(tokens[$0].text) != nil
        }) else { throw fail("no <Mag>kx token") }
        let supportTokens = tokens[position..<magnificationIndex].map(\.text)
        support = supportTokens.isEmpty ? nil : supportTokens.joined(separator: "_")
        let (magnification, unit) = Self.magnification(tokens[magnificationIndex].text)!
        magnificationKx = magnification
        magnificationUnit = unit
        position = magnificationIndex + 1

        guard position < tokens.count, let rate = Self.number(tokens[position].text, unit: "e") else {
            throw fail("expected the dose rate <R>e after the magnification",
                       at: position < tokens.count ? tokens[position].column : nil)
        }
        doseRate = rate
        position += 1
        guard position < tokens.count, let exposure = Self.number(tokens[position].text, unit: "s") else {
            throw fail("expected the exposure <T>s after the dose rate",
                       at: position < tokens.count ? tokens[position].column : nil)
        }
        exposureSeconds = exposure
        position += 1

        guard position < tokens.count, let last = tokens.last, last.text.allSatisfy(\.isASCIIDigit),
              let number = Int(last.text), position <= tokens.count - 1 else {
            throw fail("expected the sequence number <NN> last", at: tokens.last?.column)
        }
        extras = tokens[position..<(tokens.count - 1)].map { String($0.text) }
        guard extras.allSatisfy({ !$0.isEmpty }) else { throw fail("empty token") }
        sequence = number
        sequenceWidth = last.text.count
    }

    /// The file name these fields make (the inverse of `init(parsing:)`).
    public var fileName: String {
        var parts: [String] = []
        if let date { parts.append(date.replacingOccurrences(of: "-", with: "")) }
        parts.append(material)
        if let support { parts.append(support) }
        parts.append(Self.format(magnificationKx) + magnificationUnit)
        parts.append(Self.format(doseRate) + "e")
        parts.append(Self.format(exposureSeconds) + "s")
        parts.append(contentsOf: extras)
        let digits = "\(sequence)"
        parts.append(String(repeating: "0", count: max(0, sequenceWidth - digits.count)) + digits)
        return parts.joined(separator: "_") + "." + fileExtension
    }

    /// `330kx` / `205kX` -> (330, unit spelling).
    private static func magnification(_ token: Substring) -> (Double, String)? {
        guard token.count > 2 else { return nil }
        let unit = String(token.suffix(2))
        guard unit.lowercased() == "kx", let value = number(token.dropLast(2), unit: "") else { return nil }
        return (value, unit)
    }

    /// `2650e` with unit `e` -> 2650; `0p1596s` with unit `s` -> 0.1596.
    private static func number(_ token: Substring, unit: String) -> Double? {
        guard token.hasSuffix(unit) else { return nil }
        let digits = token.dropLast(unit.count)
        guard !digits.isEmpty, digits.first!.isASCIIDigit, digits.last!.isASCIIDigit,
              digits.allSatisfy({ $0.isASCIIDigit || $0 == "p" || $0 == "." }),
              digits.filter({ $0 == "p" || $0 == "." }).count <= 1 else { return nil }
        return Double(digits.replacingOccurrences(of: "p", with: "."))
    }

    /// Shortest plain decimal with `p` for the point: 2650 -> `2650`, 0.1596 -> `0p1596`.
    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return "\(Int64(value))" }
        var text = String(format: "%.9f", value)
        while text.hasSuffix("0") { text.removeLast() }
        return text.replacingOccurrences(of: ".", with: "p")
    }
}
