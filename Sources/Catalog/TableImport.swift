import Foundation
import GRDB
import Micrograph

/// How the columns of a lab's own metadata table map onto fields: `Header=field[:unit]` for
/// each column, and which columns identify a frame.
///
/// Besides the fields, a column may map onto a frame's identity: `folder` (the session
/// folder), `file` (the file name) or `path` (the file's path, absolute or relative to the
/// table's folder). Columns the mapping does not name are mapped when their name (without a
/// unit in brackets, spaces as `_`) is a field's name or a study header, e.g. `Defocus [nm]`
/// becomes `defocus` in nm.
public struct TableMapping: Sendable, Equatable {
    public struct Target: Sendable, Equatable {
        public var field: String
        public var unit: String?
        public init(field: String, unit: String? = nil) {
            self.field = field.lowercased()
            self.unit = unit
        }
    }

    /// Header text (trimmed) -> target.
    public var columns: [String: Target] = [:]
    /// The headers of the key columns; nil: folder + file, else path, else file.
    public var key: [String]?
    /// Where the mapping came from (`--map`, or the mapping file), for messages.
    public var origin: [String: String] = [:]

    public init(columns: [String: Target] = [:], key: [String]? = nil) {
        self.columns = columns
        self.key = key
    }

    public var isEmpty: Bool { columns.isEmpty && key == nil }

    /// Adds `Header=field[:unit]` (the last `=` splits, so headers may contain `=`).
    /// - Throws: `FieldError` for text without `=` or with an empty side.
    public mutating func add(_ text: String, origin: String = "--map") throws {
        guard let equals = text.lastIndex(of: "=") else {
            throw FieldError("\(origin) '\(text)': expected 'Header=field' or 'Header=field:unit'")
        }
        let header = text[..<equals].trimmingCharacters(in: .whitespaces)
        let target = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        try add(header: header, target: target, origin: origin)
    }

    mutating func add(header: String, target: String, origin: String) throws {
        let parts = target.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !header.isEmpty, let field = parts.first, !field.isEmpty else {
            throw FieldError("\(origin) '\(header)=\(target)': expected 'Header=field' or 'Header=field:unit'")
        }
        columns[header] = Target(field: field, unit: parts.count > 1 && !parts[1].isEmpty ? parts[1] : nil)
        self.origin[header] = origin
    }

    /// Reads a mapping file: `{"columns": {"Header": "field[:unit]", ...}, "key": ["Header", ...]}`.
    /// - Throws: `FormatError` naming the file when it is not such JSON.
    public static func read(from url: URL) throws -> TableMapping {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) } catch {
            throw FormatError(file: url.path, "not a JSON mapping: \(error.localizedDescription)")
        }
        guard let root = object as? [String: Any], let columns = root["columns"] as? [String: String] else {
            throw FormatError(file: url.path, #"expected {"columns": {"Header": "field[:unit]", ...}, "key": ["Header", ...]}"#)
        }
        var mapping = TableMapping()
        for header in columns.keys.sorted() {
            do { try mapping.add(header: header, target: columns[header]!, origin: url.path) } catch {
                throw FormatError(file: url.path, "\(error)")
            }
        }
        if let key = root["key"] {
            guard let list = key as? [String], !list.isEmpty else {
                throw FormatError(file: url.path, #""key" must be a list of column headers"#)
            }
            mapping.key = list
        }
        return mapping
    }

    /// The study's headers, so its table maps without a mapping.
    static let studyHeaders: [String: Target] = [
        "file name": Target(field: "file"), "folder": Target(field: "folder"), "date": Target(field: "date"),
        "material": Target(field: "material"), "nanoparticle size (nm)": Target(field: "size", unit: "nm"),
        "nanoparticle shape": Target(field: "shape"), "support": Target(field: "support"),
        "instrument": Target(field: "instrument"), "dosage (e/a2)": Target(field: "dose", unit: "e/A^2"),
        "pixel scale (nm)": Target(field: "pixel_scale", unit: "nm"),
    ]

    /// `Defocus [nm]` -> (`defocus`, `nm`); `Dose (e/A2)` -> (`dose`, `e/A2`).
    static func split(header: String) -> (name: String, unit: String?) {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        for (open, close) in [("[", "]"), ("(", ")")] where trimmed.hasSuffix(close) {
            if let start = trimmed.range(of: open, options: .backwards) {
                let unit = trimmed[start.upperBound..<trimmed.index(before: trimmed.endIndex)].trimmingCharacters(in: .whitespaces)
                let name = trimmed[..<start.lowerBound].trimmingCharacters(in: .whitespaces)
                return (name, unit.isEmpty ? nil : unit)
            }
        }
        return (trimmed, nil)
    }

    static func slug(_ name: String) -> String {
        var slug = ""
        for scalar in name.lowercased().unicodeScalars {
            if scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) {
                slug.unicodeScalars.append(scalar)
            } else if !slug.hasSuffix("_") {
                slug += "_"
            }
        }
        while slug.hasSuffix("_") { slug.removeLast() }
        if let first = slug.unicodeScalars.first, ("0"..."9").contains(first) { slug = "c_" + slug }
        return slug
    }
}

/// Converts between the units a table states and a field's unit: lengths (A, pm, nm, um, and
/// the same per pixel) and magnification (x, kx).
public enum UnitConversion {
    static func canonical(_ unit: String) -> String {
        var text = unit.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "^", with: "")
            .replacingOccurrences(of: "Å", with: "A").replacingOccurrences(of: "µ", with: "u").replacingOccurrences(of: "μ", with: "u")
        for suffix in ["/px", "/pixel", " per pixel"] where text.lowercased().hasSuffix(suffix) {
            text = String(text.dropLast(suffix.count))
        }
        return text
    }

    static let lengths: [String: Double] = ["A": 0.1, "pm": 1e-3, "nm": 1, "um": 1e3]
    static let magnifications: [String: Double] = ["x": 1e-3, "X": 1e-3, "kx": 1, "kX": 1, "Kx": 1]

    /// The factor that turns a value in `from` into `to`; nil when they cannot be converted.
    public static func factor(from: String, to: String) -> Double? {
        let a = canonical(from), b = canonical(to)
        if a == b || a.lowercased() == b.lowercased() && lengths[a] == nil { return 1 }
        if let x = lengths[a], let y = lengths[b] { return x / y }
        if let x = magnifications[a], let y = magnifications[b] { return x / y }
        return nil
    }
}

/// What `TableImporter` did.
public struct TableImportReport: Sendable, Equatable {
    public var source: String
    public var rows = 0
    /// Rows matched to a cataloged frame, and rows that created one (folder + file keys).
    public var matched = 0
    public var created = 0
    /// Lines of rows whose key matches no cataloged frame (file or path keys).
    public var unmatchedLines: [Int] = []
    public var valuesWritten = 0
    /// Values that differed from what the catalog held: `session/file (line N): field old -> new`.
    public var changed: [String] = []
    /// Columns no field took (kept as text fields with `keepUnmapped`).
    public var unmapped: [String] = []
    public var keptFields: [String] = []
    /// How each column was read: `Header -> field [unit conversion]`.
    public var columns: [String] = []

    public var summary: String {
        let counts: String = "\(rows) rows from \(source): \(matched) matched, \(created) new, "
        let writes: String = "\(unmatchedLines.count) match no frame; \(valuesWritten) values written, \(changed.count) changed"
        var lines: [String] = [counts + writes]
        if !unmatchedLines.isEmpty {
            let numbers: [String] = unmatchedLines.map { String($0) }
            lines.append("rows matching no cataloged frame (lines): " + numbers.joined(separator: ", "))
        }
        if !unmapped.isEmpty {
            let note: String = keptFields.isEmpty ? " (ignored; --keep-unmapped keeps them as text fields)" : ""
            lines.append("unmapped columns" + note + ": " + unmapped.joined(separator: ", "))
        }
        if !keptFields.isEmpty { lines.append("kept as text fields: " + keptFields.joined(separator: ", ")) }
        return lines.joined(separator: "\n")
    }
}

/// Imports a metadata table with any header (CSV, TSV or `;`-separated) through a
/// `TableMapping`: the whole table is checked first (header, mapping, units, every value's
/// type, duplicate keys), then written in one transaction with each value's source (`table`,
/// file and line); an error names the table (or mapping) file, the line and the column, and
/// writes nothing.
public enum TableImporter {
    enum Identity { case folder, file, path }

    struct Column {
        var index: Int
        var header: String
        var field: QueryField?
        var identity: Identity?
        var factor: Double
        var keptName: String?
    }

    /// True when `data`'s header is exactly the study's (`MetadataImporter` imports it).
    public static func hasStudyHeader(_ data: Data) -> Bool {
        guard let table = try? CSVTable(data: data.prefix(4096), file: ""), let header = table.records.first else { return false }
        return header.fields.map { $0.trimmingCharacters(in: .whitespaces) } == MetadataImporter.header
    }

    /// - Parameters:
    ///   - source: the table's name in messages and sources (its file name or path).
    ///   - folder: where relative paths of a `path` key are resolved.
    /// - Throws: `FormatError` (file, line, column) for a bad table or mapping; nothing is written.
    public static func importTable(_ data: Data, source: String, folder: URL?, mapping: TableMapping,
                                   keepUnmapped: Bool, into store: CatalogStore) throws -> TableImportReport {
        let table = try CSVTable(data: data, file: source, separator: CSVTable.detectSeparator(data))
        guard let headerRecord = table.records.first else {
            throw FormatError(file: source, line: 1, column: 1, "empty table: expected a header line")
        }
        let headers = headerRecord.fields.map { $0.trimmingCharacters(in: .whitespaces) }
        return try store.dbQueue.write { db in
            var registry = try FieldRegistry.load(from: db)
            var report = TableImportReport(source: source)
            // Every mapped header must be a column.
            for header in mapping.columns.keys.sorted() where !headers.contains(header) {
                throw FormatError(file: source, line: headerRecord.line, column: headers.count + 1,
                                  "the mapping (\(mapping.origin[header] ?? "--map")) names column '\(header)', which the header "
                                  + "does not have; columns: " + headers.map { "'\($0)'" }.joined(separator: ", "))
            }
            var columns: [Column] = []
            for (index, header) in headers.enumerated() {
                let (name, statedUnit) = TableMapping.split(header: header)
                let target = mapping.columns[header]
                    ?? TableMapping.studyHeaders[header.lowercased()]
                    ?? Self.automaticTarget(name: name, unit: statedUnit, registry: registry)
                func fail(_ message: String) -> FormatError {
                    FormatError(file: source, line: headerRecord.line, column: index + 1, "column '\(header)': \(message)")
                }
                guard let target else {
                    report.unmapped.append(header)
                    if keepUnmapped {
                        let keptName = TableMapping.slug(name)
                        guard FieldRegistry.isValidName(keptName) else { throw fail("no field name can be made from it") }
                        if let existing = registry.field(named: keptName) {
                            guard existing.kind == .text, !existing.isBuiltIn else {
                                throw fail("would be kept as text field '\(keptName)', but that field is \(existing.kind.typeName)")
                            }
                        } else {
                            try FieldRegistry.add(name: keptName, kind: .text, unit: nil,
                                                  description: "column '\(header)' of \(source)", in: db)
                            registry = try FieldRegistry.load(from: db)
                            report.keptFields.append(keptName)
                        }
                        columns.append(Column(index: index, header: header, field: registry.field(named: keptName),
                                              factor: 1, keptName: keptName))
                    }
                    continue
                }
                switch target.field {
                case "folder", "session":
                    columns.append(Column(index: index, header: header, identity: .folder, factor: 1))
                case "file", "file_name":
                    columns.append(Column(index: index, header: header, identity: .file, factor: 1))
                case "path":
                    columns.append(Column(index: index, header: header, identity: .path, factor: 1))
                default:
                    guard let field = registry.field(named: target.field) else {
                        throw FormatError(file: source, line: headerRecord.line, column: index + 1,
                                          "the mapping (\(mapping.origin[header] ?? "automatic")) sends column '\(header)' to unknown field '\(target.field)'; "
                                          + "add it with `hrtem field add \(target.field) --type ...` or map to one of: "
                                          + registry.names.joined(separator: ", "))
                    }
                    guard field.isBuiltIn ? FrameValues.writableColumn(field) != nil : true else {
                        throw fail("\(field.rawValue) cannot be imported (it is the frame's identity or a fact)")
                    }
                    var factor = 1.0
                    if let unit = target.unit ?? statedUnit, let fieldUnit = field.unit, field.kind == .number {
                        guard let converted = UnitConversion.factor(from: unit, to: fieldUnit) else {
                            throw fail("values in \(unit) cannot be converted to \(field.rawValue)'s unit \(fieldUnit)")
                        }
                        factor = converted
                    }
                    columns.append(Column(index: index, header: header, field: field, factor: factor))
                    report.columns.append("\(header) -> \(field.rawValue)" + (factor != 1 ? " (x \(FrameListing.number(factor)))" : ""))
                }
            }

            // The key: given, else folder + file, else path, else file.
            let keyColumns: [Column]
            if let key = mapping.key {
                keyColumns = try key.map { header in
                    guard let column = columns.first(where: { $0.header == header && $0.identity != nil }) else {
                        throw FormatError(file: source, line: headerRecord.line, column: headers.count + 1,
                                          "key column '\(header)' is not a column mapped to folder, file or path")
                    }
                    return column
                }
            } else {
                let folder = columns.first { $0.identity == .folder }, file = columns.first { $0.identity == .file }
                let path = columns.first { $0.identity == .path }
                if let folder, let file { keyColumns = [folder, file] } else if let path { keyColumns = [path] }
                else if let file { keyColumns = [file] } else {
                    throw FormatError(file: source, line: headerRecord.line, column: 1,
                                      "no key: map a column to file (and one to folder), or to path, e.g. --map 'Image=file'")
                }
            }

            // Every row is read and checked before the first write.
            struct ParsedRow { var line: Int; var key: [String]; var values: [(QueryField, QueryValue)] }
            var parsed: [ParsedRow] = []
            var seen: [[String]: Int] = [:]
            for record in table.records.dropFirst() {
                guard record.fields.count <= headers.count else {
                    throw FormatError(file: source, line: record.line, column: headers.count + 1,
                                      "expected \(headers.count) fields, found \(record.fields.count)")
                }
                func cell(_ column: Column) -> String {
                    column.index < record.fields.count ? record.fields[column.index].trimmingCharacters(in: .whitespaces) : ""
                }
                let key = try keyColumns.map { column -> String in
                    let value = cell(column)
                    guard !value.isEmpty else {
                        throw FormatError(file: source, line: record.line, column: column.index + 1,
                                          "column '\(column.header)': empty; the key needs a value")
                    }
                    return value
                }
                if let first = seen[key] {
                    throw FormatError(file: source, line: record.line, column: keyColumns[0].index + 1,
                                      "duplicate key \(key.joined(separator: " / ")): already on line \(first)")
                }
                seen[key] = record.line
                var values: [(QueryField, QueryValue)] = []
                for column in columns {
                    guard let field = column.field else { continue }
                    let text = cell(column)
                    if text.isEmpty { continue }
                    guard var value = QueryValue(parsing: text, as: field.kind) else {
                        throw FormatError(file: source, line: record.line, column: column.index + 1,
                                          "column '\(column.header)': '\(text)' is not a \(field.kind.typeName) "
                                          + "(\(field.rawValue) is a \(field.kind.typeName) field)")
                    }
                    if case .number(let number) = value, column.factor != 1 { value = .number(number * column.factor) }
                    values.append((field, value))
                }
                parsed.append(ParsedRow(line: record.line, key: key, values: values))
            }

            var knownSessions = Set(try String.fetchAll(db, sql: "SELECT folder FROM sessions"))
            for (rowIndex, row) in parsed.enumerated() {
                report.rows += 1
                var frameId: Int64?
                var label = row.key.joined(separator: "/")
                let identities = keyColumns.map { $0.identity! }
                if identities == [.folder, .file] {
                    let (session, file) = (row.key[0], row.key[1])
                    if let frame = try CatalogStore.frame(session: session, file: file, in: db) {
                        frameId = frame.id
                        report.matched += 1
                    } else {
                        if !knownSessions.contains(session) {
                            try CatalogStore.ensureSession(session, in: db)
                            knownSessions.insert(session)
                        }
                        var frame = FrameRecord(session: session, fileName: file, metadataSource: source, metadataRow: rowIndex + 1)
                        try frame.insert(db)
                        frameId = frame.id
                        report.created += 1
                    }
                } else {
                    let candidates: [Row]
                    switch identities.first! {
                    case .path:
                        let given = row.key[0]
                        let absolute = given.hasPrefix("/") ? given
                            : (folder ?? URL(fileURLWithPath: ".")).appendingPathComponent(given).standardizedFileURL.path
                        candidates = try Row.fetchAll(db, sql: """
                            SELECT id, session, file_name FROM frames WHERE path = ? OR path LIKE ? ESCAPE '\\' LIMIT 2
                            """, arguments: [absolute, "%/" + Self.likeEscaped(given)])
                    default:
                        candidates = try Row.fetchAll(db, sql: "SELECT id, session, file_name FROM frames WHERE file_name = ? LIMIT 2",
                                                      arguments: [row.key.last!])
                    }
                    if candidates.count > 1 {
                        throw FormatError(file: source, line: row.line, column: keyColumns[0].index + 1,
                                          "'\(row.key.joined(separator: "/"))' matches several cataloged frames; add a folder column to the key")
                    }
                    if let match = candidates.first {
                        frameId = match["id"]
                        label = "\(match["session"] as String)/\(match["file_name"] as String)"
                        report.matched += 1
                    } else {
                        report.unmatchedLines.append(row.line)
                    }
                }
                guard let frameId else { continue }
                let origin = ValueSource(.table, "\(source) line \(row.line)")
                for (field, value) in row.values {
                    report.valuesWritten += 1
                    if let change = try FrameValues.write(value, to: field, frameId: frameId, source: origin, in: db),
                       let old = change.old {
                        report.changed.append("\(label) (line \(row.line)): \(field.rawValue) \(old) -> \(change.new ?? "(none)")")
                    }
                }
            }
            return report
        }
    }

    /// A column named after a field maps onto it (with the unit its header states).
    static func automaticTarget(name: String, unit: String?, registry: FieldRegistry) -> TableMapping.Target? {
        let slug = TableMapping.slug(name)
        if ["folder", "session", "file", "file_name", "path"].contains(slug) { return .init(field: slug) }
        guard registry.field(named: slug) != nil else { return nil }
        return .init(field: slug, unit: unit)
    }

    static func likeEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_")
    }
}
