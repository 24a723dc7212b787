import Foundation
import GRDB
import Micrograph

/// How `hrtem query` prints frames.
public enum FrameOutputFormat: String, CaseIterable, Sendable {
    case table, csv, json
}

/// Renders frames as an aligned text table, CSV (RFC 4180 quoting) or JSON (an array of
/// objects, keys sorted). Units are in the column names: nm, e/A^2, e/A^2/s, s, nm/px, kx.
public enum FrameListing {
    public static let columns = [
        "session", "file", "material", "size_nm", "shape", "support", "instrument", "dose", "dose_rate",
        "exposure_s", "pixel_scale_nm", "magnification_kx", "date", "ingested",
    ]

    public static func render(_ frames: [FrameRecord], as format: FrameOutputFormat) throws -> String {
        switch format {
        case .table:
            let shown = ["session", "file", "material", "size_nm", "support", "dose", "pixel_scale_nm",
                         "magnification_kx", "date"]
            let indices = shown.map { columns.firstIndex(of: $0)! }
            return TextTable.render(header: shown, rows: frames.map { frame in
                let cells = self.cells(frame)
                return indices.map { cells[$0] }
            }) + "\(frames.count) frame\(frames.count == 1 ? "" : "s")\n"
        case .csv:
            return ([columns] + frames.map(cells)).map { $0.map(csvField).joined(separator: ",") }
                .joined(separator: "\n") + "\n"
        case .json:
            return String(decoding: try CanonicalJSON.file(frames.map(JSONFrame.init)), as: UTF8.self)
        }
    }

    static func cells(_ frame: FrameRecord) -> [String] {
        [frame.session, frame.fileName, frame.material ?? "", number(frame.particleSizeNm), frame.shape ?? "",
         frame.support ?? "", frame.instrument ?? "", number(frame.dose), number(frame.doseRate),
         number(frame.exposureSeconds), number(frame.pixelScaleNm), number(frame.magnificationKx),
         frame.date ?? "", frame.isIngested ? "yes" : "no"]
    }

    /// Shortest text that reads back as the same Double; integers without `.0`.
    public static func number(_ value: Double?) -> String {
        guard let value else { return "" }
        if value == value.rounded(), abs(value) < 1e15 { return "\(Int64(value))" }
        return "\(value)"
    }

    static func csvField(_ text: String) -> String {
        // A byte scan: those four characters are single ASCII bytes in UTF-8.
        guard text.utf8.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    private struct JSONFrame: Encodable {
        var id: Int64?
        var session: String
        var file: String
        var material: String?
        var size_nm: Double?
        var shape: String?
        var support: String?
        var instrument: String?
        var dose: Double?
        var dose_rate: Double?
        var exposure_s: Double?
        var pixel_scale_nm: Double?
        var magnification_kx: Double?
        var date: String?
        var path: String?
        var sha256: String?
        var format: String?
        var width: Int?
        var height: Int?

        init(_ frame: FrameRecord) {
            id = frame.id; session = frame.session; file = frame.fileName; material = frame.material
            size_nm = frame.particleSizeNm; shape = frame.shape; support = frame.support
            instrument = frame.instrument; dose = frame.dose; dose_rate = frame.doseRate
            exposure_s = frame.exposureSeconds; pixel_scale_nm = frame.pixelScaleNm
            magnification_kx = frame.magnificationKx; date = frame.date; path = frame.path
            sha256 = frame.sha256; format = frame.format; width = frame.width; height = frame.height
        }
    }
}

/// Plain aligned text tables for people to read.
public enum TextTable {
    /// Columns padded to their widest cell (in characters), two spaces apart; header underlined.
    public static func render(header: [String], rows: [[String]]) -> String {
        var widths = header.map(width)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], width(cell)) }
        }
        var output = ""
        output.reserveCapacity((widths.reduce(0, +) + 2 * widths.count + 1) * (rows.count + 2))
        func append(_ cells: [String]) {
            for (index, cell) in cells.enumerated() {
                output += cell
                if index < cells.count - 1 { output += String(repeating: " ", count: widths[index] - width(cell) + 2) }
            }
            output += "\n"
        }
        append(header)
        append(widths.map { String(repeating: "-", count: $0) })
        for row in rows { append(row) }
        return output
    }

    /// Characters in `text`: its byte count when it is ASCII, else its grapheme count.
    private static func width(_ text: String) -> Int {
        text.utf8.allSatisfy { $0 < 0x80 } ? text.utf8.count : text.count
    }
}

/// Frame counts per group of field values (`hrtem summary --by session,material`).
public struct CatalogSummary: Sendable, Equatable {
    public struct Group: Sendable, Equatable {
        /// One value per grouping field, as text (empty when unknown).
        public var values: [String]
        public var frames: Int
        public var labeled: Int
        public var ingested: Int
    }

    public var fields: [QueryField]
    public var groups: [Group]

    /// Counts frames (optionally only those a query selects) per distinct combination of
    /// `fields`, sorted by those values.
    public static func compute(in store: CatalogStore, by fields: [QueryField],
                               where query: FrameQuery? = nil) throws -> CatalogSummary {
        let labeledSQL = QueryField.labeled.column
        let keys = fields.map { field in field == .labeled ? "(\(labeledSQL))" : field.column }
        let select = (keys + ["count(*)", "sum(\(labeledSQL))", "count(frames.sha256)"]).joined(separator: ", ")
        let rows = try store.dbQueue.read { db in
            let compiled = try query?.compile(in: db)
            var sql = "SELECT \(select) FROM frames"
            if let compiled { sql += " WHERE \(compiled.sql)" }
            if !keys.isEmpty {
                sql += " GROUP BY " + keys.joined(separator: ", ") + " ORDER BY " + keys.joined(separator: ", ")
            }
            return try Row.fetchAll(db, sql: sql, arguments: compiled?.arguments ?? StatementArguments())
        }
        let groups = rows.compactMap { row -> Group? in
            let values = fields.indices.map { index -> String in
                let value: DatabaseValue = row[index]
                switch (fields[index], value.storage) {
                case (_, .null): return ""
                case (.labeled, .int64(let flag)): return flag != 0 ? "yes" : "no"
                case (_, .double(let number)): return FrameListing.number(number)
                case (_, .int64(let number)): return "\(number)"
                case (_, .string(let text)): return text
                case (_, .blob): return "(blob)"
                }
            }
            let count: Int = row[fields.count]
            guard count > 0 else { return nil }  // no GROUP BY on an empty selection still yields one row
            return Group(values: values, frames: count, labeled: row[fields.count + 1] ?? 0,
                         ingested: row[fields.count + 2])
        }
        return CatalogSummary(fields: fields, groups: groups)
    }

    /// An aligned table with a total line.
    public var table: String {
        let header = fields.map(\.rawValue) + ["frames", "labeled", "ingested"]
        var rows = groups.map { $0.values.map { $0.isEmpty ? "(none)" : $0 } + ["\($0.frames)", "\($0.labeled)", "\($0.ingested)"] }
        rows.append(fields.map { _ in "" } + ["\(groups.reduce(0) { $0 + $1.frames })",
                                              "\(groups.reduce(0) { $0 + $1.labeled })",
                                              "\(groups.reduce(0) { $0 + $1.ingested })"])
        if !fields.isEmpty { rows[rows.count - 1][0] = "total" }
        return TextTable.render(header: header, rows: rows)
    }
}

extension MetadataImportReport {
    /// One line per changed frame: `<session>/<file> (line N): dose 420 -> 421, shape ...`.
    public var changeDescriptions: [String] {
        changed.map { change in
            "\(change.session)/\(change.fileName) (line \(change.line)): "
                + change.fields.map { "\($0.name) \($0.old) -> \($0.new)" }.joined(separator: ", ")
        }
    }
}
