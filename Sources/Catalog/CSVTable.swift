import Foundation
import Micrograph

/// A CSV file (RFC 4180): comma-separated fields (or another separator: `;`, tab), optional double quotes around a field, `""`
/// for a quote inside one, quoted fields may span lines; LF or CRLF line ends; a UTF-8 byte
/// order mark is ignored; blank lines are skipped.
public struct CSVTable: Sendable {
    public struct Record: Sendable, Equatable {
        public var fields: [String]
        /// 1-based line where the record starts.
        public var line: Int
    }

    public var records: [Record]

    /// - Throws: `FormatError` (file, line, column = the 1-based field number; the message gives
    ///   the character position) for text that is not UTF-8,
    ///   a stray quote inside an unquoted field, text after a closing quote, or an unclosed quote.
    public init(data: Data, file: String, separator: Unicode.Scalar = ",") throws {
        guard var text = String(data: data, encoding: .utf8) else {
            throw FormatError(file: file, "not UTF-8 text")
        }
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        var records: [Record] = []
        var fields: [String] = []
        var field = ""
        var line = 1, column = 0
        var recordLine = 1
        var quoted = false, afterClosingQuote = false, fieldStarted = false
        var quoteLine = 0, quoteColumn = 0, quoteField = 0
        var iterator = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil

        func endRecord() {
            fields.append(field)
            if !(fields.count == 1 && fields[0].isEmpty && !fieldStarted) {
                records.append(Record(fields: fields, line: recordLine))
            }
            fields = []
            field = ""
            afterClosingQuote = false
            fieldStarted = false
        }

        while let scalar = pending ?? iterator.next() {
            pending = nil
            column += 1
            if quoted {
                if scalar == "\"" {
                    let next = iterator.next()
                    if next == "\"" {
                        field.unicodeScalars.append("\"")
                        column += 1
                    } else {
                        quoted = false
                        afterClosingQuote = true
                        pending = next
                    }
                } else {
                    if scalar == "\n" { line += 1; column = 0 }
                    field.unicodeScalars.append(scalar)
                }
                continue
            }
            if scalar == separator {
                fields.append(field)
                field = ""
                afterClosingQuote = false
                fieldStarted = true
                continue
            }
            switch scalar {
            case "\r":
                let next = iterator.next()
                if next != "\n" { pending = next }
                fallthrough
            case "\n":
                endRecord()
                line += 1
                column = 0
                recordLine = line
            case "\"":
                if afterClosingQuote || !field.isEmpty {
                    throw FormatError(file: file, line: line, column: fields.count + 1,
                                      "unexpected '\"' inside field \(fields.count + 1) at character \(column) "
                                      + "(quote the whole field and double inner quotes)")
                }
                quoted = true
                fieldStarted = true
                quoteLine = line
                quoteColumn = column
                quoteField = fields.count + 1
            default:
                if afterClosingQuote {
                    throw FormatError(file: file, line: line, column: fields.count + 1,
                                      "unexpected text after a closing quote in field \(fields.count + 1) "
                                      + "at character \(column)")
                }
                fieldStarted = true
                field.unicodeScalars.append(scalar)
            }
        }
        if quoted {
            throw FormatError(file: file, line: quoteLine, column: quoteField,
                              "unclosed quote opened in field \(quoteField) at character \(quoteColumn)")
        }
        if !field.isEmpty || !fields.isEmpty || fieldStarted { endRecord() }
        self.records = records
    }

    /// The separator a table's first line uses: whichever of `;`, tab and `,` occurs most
    /// there outside quotes (`,` on a tie or when none does).
    public static func detectSeparator(_ data: Data) -> Unicode.Scalar {
        var counts: [Unicode.Scalar: Int] = [",": 0, ";": 0, "\t": 0]
        var quoted = false
        for byte in data.prefix(64 * 1024) {
            let scalar = Unicode.Scalar(byte)
            if scalar == "\"" { quoted.toggle() }
            if !quoted && (scalar == "\n" || scalar == "\r") { break }
            if !quoted, counts[scalar] != nil { counts[scalar]! += 1 }
        }
        let best = [Unicode.Scalar(","), ";", "\t"].max { counts[$0]! < counts[$1]! }!
        return counts[best]! > counts[","]! ? best : ","
    }
}
