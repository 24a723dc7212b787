import GRDB

/// How many frames have a value for each field and how many lack one (`hrtem summary --missing`).
public struct FieldGaps: Sendable, Equatable {
    public struct Line: Sendable, Equatable {
        public var field: String
        public var kind: QueryField.Kind
        public var unit: String?
        public var known: Int
        public var missing: Int
    }

    public var frames: Int
    public var lines: [Line]

    /// Counts, over the frames `query` selects (all when nil), each field's known and missing
    /// values; `labeled` counts labels. One `is missing` count per field, in one transaction.
    public static func compute(in store: CatalogStore, fields: FieldRegistry,
                               where query: FrameQuery? = nil) throws -> FieldGaps {
        try store.dbQueue.read { db in
            func count(_ expression: QueryExpression?) throws -> Int {
                let combined: QueryExpression? = switch (query?.expression, expression) {
                case let (selection?, test?): .and(selection, test)
                case let (selection, test): selection ?? test
                }
                guard let combined else { return try Int.fetchOne(db, sql: "SELECT count(*) FROM frames") ?? 0 }
                let compiled = try FrameQuery(text: "", expression: combined).compile(in: db)
                return try Int.fetchOne(db, sql: "SELECT count(*) FROM frames WHERE \(compiled.sql)",
                                        arguments: compiled.arguments) ?? 0
            }
            let total = try count(nil)
            let lines = try fields.fields.map { field in
                let missing = try count(.missing(field))
                return Line(field: field.rawValue, kind: field.kind, unit: field.unit, known: total - missing, missing: missing)
            }
            return FieldGaps(frames: total, lines: lines)
        }
    }

    /// One row per field: name, type, unit, frames with a value, frames without.
    public var table: String {
        TextTable.render(header: ["field", "type", "unit", "known", "missing"],
                         rows: lines.map { [$0.field, $0.kind.typeName, $0.unit ?? "", "\($0.known)", "\($0.missing)"] })
            + "\(frames) frame\(frames == 1 ? "" : "s")\n"
    }
}

extension FieldRegistry {
    /// `hrtem field list`: name, type, unit, built-in or registered, description.
    public var table: String {
        TextTable.render(header: ["field", "type", "unit", "origin", "description"],
                         rows: fields.map { [$0.rawValue, $0.kind.typeName, $0.unit ?? "", $0.isBuiltIn ? "built-in" : "registered",
                                             $0.summary ?? ""] })
    }
}

extension FrameDetails {
    /// Every value the frame has, one line each with its unit and source (`hrtem show`).
    public static func renderValues(_ entries: [FrameValues.Entry]) -> String {
        guard !entries.isEmpty else { return "values: (none)\n" }
        var lines = ["values (field = value [unit]  <- source):"]
        for entry in entries {
            let value = entry.value.plain + (entry.field.unit.map { " \($0)" } ?? "")
            let source = entry.source.map { "\($0.kind.rawValue): \($0.detail)" } ?? "(not recorded)"
            lines.append("  \(entry.field.rawValue) = \(value)  <- \(source)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A frame's changes, oldest first (`hrtem history`).
    public static func renderHistory(_ history: [FrameValues.HistoryLine]) -> String {
        guard !history.isEmpty else { return "no recorded changes\n" }
        return history.map { line in
            "\(line.at)  \(line.field): \(line.old ?? "(none)") -> \(line.new ?? "(none)")  (\(line.source.kind.rawValue): \(line.source.detail))"
        }.joined(separator: "\n") + "\n"
    }
}

/// `hrtem set --where Q field=value ...`: the same values for every frame a query selects.
public enum FieldAssignment {
    /// Parses `field=value` against the registry, checking the value's type.
    /// - Throws: `FieldError` for a missing `=`, an unknown or unsettable field, or a value of
    ///   the wrong type (`field=` with nothing after it removes the value).
    public static func parse(_ text: String, registry: FieldRegistry) throws -> (QueryField, QueryValue?) {
        guard let equals = text.firstIndex(of: "=") else { throw FieldError("'\(text)': expected field=value") }
        let name = text[..<equals].trimmingCharacters(in: .whitespaces)
        let raw = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        guard let field = registry.field(named: name) else {
            throw FieldError("unknown field '\(name)'; known fields: \(registry.names.joined(separator: ", "))")
        }
        guard !field.isBuiltIn || FrameValues.writableColumn(field) != nil else {
            throw FieldError("\(field.rawValue) cannot be set")
        }
        if raw.isEmpty { return (field, nil) }
        var unquoted = raw
        if unquoted.count >= 2, let first = unquoted.first, first == unquoted.last, first == "\"" || first == "'" {
            unquoted = String(unquoted.dropFirst().dropLast())
        }
        guard let value = QueryValue(parsing: unquoted, as: field.kind) else {
            throw FieldError("\(field.rawValue) is a \(field.kind.typeName) field; '\(raw)' is not a \(field.kind.typeName)")
        }
        return (field, value)
    }

    /// Writes the values to every selected frame in one transaction, as a `set` source.
    /// - Returns: how many frames were selected and how many values changed.
    public static func apply(_ assignments: [(QueryField, QueryValue?)], where query: FrameQuery,
                             in store: CatalogStore) throws -> (frames: Int, changed: Int) {
        try store.dbQueue.write { db in
            let ids = try CatalogStore.frames(matching: query, in: db).compactMap(\.id)
            let source = ValueSource(.set, "hrtem set --where '\(query.text)'")
            var changed = 0
            for id in ids {
                for (field, value) in assignments
                where try FrameValues.write(value, to: field, frameId: id, source: source, in: db) != nil {
                    changed += 1
                }
            }
            return (ids.count, changed)
        }
    }
}
