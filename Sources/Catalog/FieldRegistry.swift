import Foundation
import GRDB
import Micrograph

/// Every field a catalog knows: the study's built-in fields (`QueryField.allCases`) and the
/// fields registered in its `fields` table (`hrtem field add`, the tag fields every catalog
/// has, columns kept by `import-metadata --keep-unmapped`). The query language, `summary
/// --by`, `show`, `set` and `import-metadata` all resolve names here.
public struct FieldRegistry: Sendable {
    public private(set) var fields: [QueryField]

    /// The built-in fields only (what a query means without a catalog).
    public static let builtIn = FieldRegistry(fields: QueryField.allCases)

    public init(fields: [QueryField]) { self.fields = fields }

    /// Field names, built-in first, then registered in registration order.
    public var names: [String] { fields.map(\.rawValue) }

    /// The field of this name (case-insensitive), nil when there is none.
    public func field(named name: String) -> QueryField? {
        let lowered = name.lowercased()
        return fields.first { $0.rawValue == lowered }
    }

    /// The registry of the catalog `db` holds.
    public static func load(from db: Database) throws -> FieldRegistry {
        var fields = QueryField.allCases
        for row in try Row.fetchAll(db, sql: "SELECT id, name, type, unit, description FROM fields ORDER BY id") {
            guard let kind = QueryField.Kind(rawValue: row["type"]) else { continue }
            fields.append(QueryField(name: row["name"], kind: kind, storage: .registered(id: row["id"]),
                                     unit: row["unit"], summary: row["description"]))
        }
        return FieldRegistry(fields: fields)
    }

    /// A name a field may have: a letter, then letters, digits and `_` (so queries can write
    /// it bare), not a query keyword nor a name tables use for a frame's identity.
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic || first == "_" else { return false }
        return name.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" }
            && !["and", "or", "not", "in", "between", "true", "false", "is", "missing", "id", "path", "folder", "file_name"]
                .contains(name.lowercased())
    }

    /// Registers a field inside the caller's transaction and returns it.
    /// - Throws: `FieldError` when the name is taken or not a valid name, `DatabaseError`.
    @discardableResult
    public static func add(name: String, kind: QueryField.Kind, unit: String?, description: String?,
                           in db: Database) throws -> QueryField {
        let lowered = name.lowercased()
        guard isValidName(lowered) else {
            throw FieldError("'\(name)' is not a field name: use a letter, then letters, digits or '_' (not a query keyword)")
        }
        let registry = try load(from: db)
        if let existing = registry.field(named: lowered) {
            throw FieldError("field '\(lowered)' exists already (\(existing.kind.rawValue)\(existing.unit.map { ", \($0)" } ?? ""))")
        }
        try db.execute(sql: "INSERT INTO fields (name, type, unit, description) VALUES (?, ?, ?, ?)",
                       arguments: [lowered, kind.rawValue, unit, description])
        let id = db.lastInsertedRowID
        // Adding a column is a change of the schema only (rows read NULL); its index makes a
        // test on the field a seek.
        try db.execute(sql: "ALTER TABLE frames ADD COLUMN field_\(id) \(sqlType(kind))")
        try db.execute(sql: "CREATE INDEX frames_field_\(id) ON frames(field_\(id))")
        return QueryField(name: lowered, kind: kind, storage: .registered(id: id), unit: unit, summary: description)
    }

    static func sqlType(_ kind: QueryField.Kind) -> String {
        switch kind {
        case .number: "REAL"
        case .text, .date: "TEXT"
        case .boolean: "INTEGER"
        }
    }

    /// Creates a composite index over `fields` (built-in or registered, in this order) ending
    /// in the catalog order, so a query testing them together seeks every one of them and
    /// reads ids, counts and order from the index alone, as the study's indexes do for its
    /// fields. Put equality-tested fields first and at most one range-tested field last (a
    /// numeric field with few values is sought value by value wherever it stands).
    /// - Returns: the index's name (`frames_by_<names>`); an existing one is kept.
    /// - Throws: `FieldError` for an unknown field, `labeled`, or fewer than two fields.
    @discardableResult
    public func addIndex(over names: [String], in db: Database) throws -> String {
        let fields = try names.map { name -> QueryField in
            guard let field = field(named: name) else {
                throw FieldError("unknown field '\(name)'; known fields: \(self.names.joined(separator: ", "))")
            }
            guard field != .labeled else { throw FieldError("labeled is not a column and cannot be indexed") }
            return field
        }
        guard fields.count >= 2 else { throw FieldError("a composite index needs at least two fields") }
        let index = "frames_by_" + fields.map(\.rawValue).joined(separator: "_")
        let columns = fields.map { String($0.column.dropFirst("frames.".count)) } + ["metadata_row"]
        try db.execute(sql: "CREATE INDEX IF NOT EXISTS \(index) ON frames(\(columns.joined(separator: ", ")))")
        return index
    }
}

extension CatalogStore {
    /// The catalog's fields (built-in and registered).
    public func fieldRegistry() throws -> FieldRegistry {
        try dbQueue.read { db in try FieldRegistry.load(from: db) }
    }

    /// Parses a query against this catalog's fields.
    public func parseQuery(_ text: String) throws -> FrameQuery {
        try FrameQuery.parse(text, fields: fieldRegistry())
    }
}

/// A field operation that cannot be done (unknown field, wrong value type, name taken).
public struct FieldError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension QueryField.Kind {
    /// The type names `hrtem field add --type` takes: number, text, date, bool.
    public init?(typeName: String) {
        switch typeName.lowercased() {
        case "number": self = .number
        case "text": self = .text
        case "date": self = .date
        case "bool", "boolean": self = .boolean
        default: return nil
        }
    }

    public var typeName: String { self == .boolean ? "bool" : rawValue }
}

extension QueryValue {
    /// Reads a value of `kind` as a person or a table writes it: numbers (`0.5`, `1e3`, and the
    /// study's file-name form `0p5`), text, dates (`2021-08-26`, `08/26/21`), booleans
    /// (true/false, yes/no, 1/0). Nil when `text` is not of that kind.
    public init?(parsing text: String, as kind: QueryField.Kind) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        switch kind {
        case .number:
            guard let number = Double(trimmed) ?? Double(trimmed.replacingOccurrences(of: "p", with: ".")),
                  number.isFinite else { return nil }
            self = .number(number)
        case .text:
            self = .text(trimmed)
        case .date:
            guard let iso = StudyDate.iso(from: trimmed) else { return nil }
            self = .date(iso)
        case .boolean:
            switch trimmed.lowercased() {
            case "true", "yes", "1", "y": self = .boolean(true)
            case "false", "no", "0", "n": self = .boolean(false)
            default: return nil
            }
        }
    }

    /// The value from a database value of a field of `kind`, nil for NULL.
    init?(_ value: DatabaseValue, kind: QueryField.Kind) {
        switch value.storage {
        case .null, .blob: return nil
        case .double(let number): self = kind == .boolean ? .boolean(number != 0) : .number(number)
        case .int64(let number): self = kind == .boolean ? .boolean(number != 0) : .number(Double(number))
        case .string(let text): self = kind == .date ? .date(text) : .text(text)
        }
    }

    /// The value as listings print it (no quotes; numbers as `FrameListing.number`).
    public var plain: String {
        switch self {
        case .number(let value): FrameListing.number(value)
        case .text(let value), .date(let value): value
        case .boolean(let value): value ? "true" : "false"
        }
    }
}

/// Where a value came from. Kinds rank (highest first) `set` > `table` > `name` > `tag`:
/// a value from a lower-ranked source never replaces one from a higher-ranked source, so a
/// value typed with `hrtem set` survives a re-import and a re-ingest, and a table's value
/// survives what a file name or the file's tags say. Equal ranks replace (the newer table wins).
/// A value with no recorded source (written before sources were kept) ranks as a table's.
public struct ValueSource: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        /// `hrtem set`.
        case set
        /// A metadata table (`detail`: file and line).
        case table
        /// The file name, through a name pattern (`detail`: the pattern).
        case name
        /// The file's own tags or calibration (`detail`: the tag path).
        case tag

        public var rank: Int {
            switch self {
            case .set: 4
            case .table: 3
            case .name: 2
            case .tag: 1
            }
        }
    }

    public var kind: Kind
    public var detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    public var description: String { "\(kind.rawValue): \(detail)" }
}

/// Reads and writes the values of a frame's fields, built-in and registered alike, with their
/// sources and history.
public enum FrameValues {
    /// What a write did to one value.
    public struct Change: Sendable, Equatable {
        public var frameId: Int64
        public var field: String
        public var old: String?
        public var new: String?
    }

    /// The `frames` column behind a built-in field that can be written (not session, file or
    /// labeled, which are identities and facts).
    static func writableColumn(_ field: QueryField) -> String? {
        guard case .column(let column) = field.storage, ![QueryField.session, .file].contains(field) else { return nil }
        return String(column.dropFirst("frames.".count))
    }

    /// The current value of `field` for a frame.
    public static func value(of field: QueryField, frameId: Int64, in db: Database) throws -> QueryValue? {
        let stored = try DatabaseValue.fetchOne(db.cachedStatement(sql: "SELECT \(field.column) FROM frames WHERE frames.id = ?"),
                                                arguments: [frameId]) ?? .null
        return QueryValue(stored, kind: field.kind)
    }

    /// The recorded source of a frame's value of `field`, nil when none was recorded (values
    /// written before sources were kept).
    public static func source(of field: QueryField, frameId: Int64, in db: Database) throws -> ValueSource? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT kind, detail FROM value_sources WHERE frame_id = ? AND field = ?"),
                                         arguments: [frameId, field.rawValue]),
              let kind = ValueSource.Kind(rawValue: row["kind"]) else { return nil }
        return ValueSource(kind, row["detail"])
    }

    /// Writes one value (nil removes it) unless a higher-ranked source set the current one;
    /// records the source and, when the value changes, a history line.
    /// - Returns: the change, nil when the value stayed as it was (same value, or outranked).
    /// - Throws: `FieldError` for a field that cannot be written or a value of the wrong type.
    @discardableResult
    public static func write(_ value: QueryValue?, to field: QueryField, frameId: Int64, source: ValueSource,
                             in db: Database) throws -> Change? {
        if let value { try check(value, for: field) }
        let old = try self.value(of: field, frameId: frameId, in: db)
        // A value stored before sources were recorded came from a table (or the study's names).
        let current = try self.source(of: field, frameId: frameId, in: db)
        if (current?.kind.rank ?? (old == nil ? 0 : ValueSource.Kind.table.rank)) > source.kind.rank { return nil }
        let stored = value.map(storedValue)
        switch field.storage {
        case .column:
            guard let column = writableColumn(field) else { throw FieldError("\(field.rawValue) cannot be set") }
            if old != value {
                try db.cachedStatement(sql: "UPDATE frames SET \(column) = ? WHERE id = ?").execute(arguments: [stored, frameId])
            }
        case .labeled:
            throw FieldError("labeled cannot be set: it is true when the frame has a label")
        case .registered(let id):
            if old != value {
                try db.cachedStatement(sql: "UPDATE frames SET field_\(id) = ? WHERE id = ?").execute(arguments: [stored, frameId])
            }
        }
        if value == nil {
            try db.cachedStatement(sql: "DELETE FROM value_sources WHERE frame_id = ? AND field = ?")
                .execute(arguments: [frameId, field.rawValue])
        } else {
            try recordSource(source, of: field, frameId: frameId, in: db)
        }
        guard old != value else { return nil }
        try db.cachedStatement(sql: """
            INSERT INTO value_history (frame_id, field, old_value, new_value, kind, detail) VALUES (?, ?, ?, ?, ?, ?)
            """).execute(arguments: [frameId, field.rawValue, old?.plain, value?.plain, source.kind.rawValue, source.detail])
        return Change(frameId: frameId, field: field.rawValue, old: old?.plain, new: value?.plain)
    }

    /// Records the source of a value already written to a `frames` column (by the study's
    /// importer or ingest), when the frame has the value and no better-ranked source.
    /// `isNewFrame`: the frame was just inserted, so no source can outrank this one.
    static func noteSource(_ source: ValueSource, of field: QueryField, frameId: Int64, isNewFrame: Bool = false,
                           in db: Database) throws {
        if !isNewFrame, let current = try self.source(of: field, frameId: frameId, in: db),
           current.kind.rank > source.kind.rank { return }
        try recordSource(source, of: field, frameId: frameId, in: db)
    }

    static func recordSource(_ source: ValueSource, of field: QueryField, frameId: Int64, in db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT INTO value_sources (frame_id, field, kind, detail) VALUES (?, ?, ?, ?)
            ON CONFLICT (frame_id, field) DO UPDATE SET kind = excluded.kind, detail = excluded.detail
            """).execute(arguments: [frameId, field.rawValue, source.kind.rawValue, source.detail])
    }

    /// Throws unless `value` is of the field's kind.
    public static func check(_ value: QueryValue, for field: QueryField) throws {
        let matches: Bool = switch (field.kind, value) {
        case (.number, .number), (.text, .text), (.date, .date), (.boolean, .boolean): true
        default: false
        }
        guard matches else {
            throw FieldError("\(field.rawValue) is a \(field.kind.typeName) field; \(value) is not a \(field.kind.typeName)")
        }
    }

    static func storedValue(_ value: QueryValue) -> DatabaseValue {
        switch value {
        case .number(let number): number.databaseValue
        case .text(let text), .date(let text): text.databaseValue
        case .boolean(let flag): (flag ? 1 : 0).databaseValue
        }
    }

    /// One value of a frame with its source, for `hrtem show`.
    public struct Entry: Sendable, Equatable {
        public var field: QueryField
        public var value: QueryValue
        public var source: ValueSource?
    }

    /// Every field with a value for the frame, in registry order, with its source.
    public static func entries(frameId: Int64, registry: FieldRegistry, in db: Database) throws -> [Entry] {
        var sources: [String: ValueSource] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT field, kind, detail FROM value_sources WHERE frame_id = ?",
                                    arguments: [frameId]) {
            if let kind = ValueSource.Kind(rawValue: row["kind"]) { sources[row["field"]] = ValueSource(kind, row["detail"]) }
        }
        var entries: [Entry] = []
        for field in registry.fields where ![QueryField.labeled, .session, .file].contains(field) {
            guard let value = try value(of: field, frameId: frameId, in: db) else { continue }
            entries.append(Entry(field: field, value: value, source: sources[field.rawValue]))
        }
        return entries
    }

    /// One line of a frame's history.
    public struct HistoryLine: Sendable, Equatable {
        public var field: String
        public var old: String?
        public var new: String?
        public var source: ValueSource
        public var at: String
    }

    /// Every recorded change of the frame's values, oldest first.
    public static func history(frameId: Int64, in db: Database) throws -> [HistoryLine] {
        try Row.fetchAll(db, sql: """
            SELECT field, old_value, new_value, kind, detail, changed_at FROM value_history WHERE frame_id = ? ORDER BY id
            """, arguments: [frameId]).map { row in
            HistoryLine(field: row["field"], old: row["old_value"], new: row["new_value"],
                        source: ValueSource(ValueSource.Kind(rawValue: row["kind"]) ?? .set, row["detail"]), at: row["changed_at"])
        }
    }
}
