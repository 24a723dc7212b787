import GRDB

/// Splits the frames a query selects by the values of one field, the way the study split its
/// frames by dose (values within a tolerance form one group): each group becomes a dataset
/// recipe, so the generalization matrix can ask the study's question of any field
/// (`hrtem matrix --where Q --split-by FIELD[~TOL]`).
public struct FieldSplit: Sendable, Equatable {
    /// One group: its values' range (numbers) or its value (text, dates), how many frames it
    /// holds, and the query that selects exactly them.
    public struct Group: Sendable, Equatable {
        public var label: String
        public var frames: Int
        public var query: String
        /// A name a dataset recipe may take: `<field>_<value>` or `<field>_<low>_to_<high>`.
        public var datasetName: String
    }

    public var field: QueryField
    public var tolerance: Double?
    public var groups: [Group]

    /// Parses `FIELD` or `FIELD~TOL` against the registry.
    /// - Throws: `FieldError` for an unknown field, a tolerance on a non-numeric field, or a
    ///   tolerance that is not a number >= 0.
    public static func parseSpec(_ spec: String, registry: FieldRegistry) throws -> (QueryField, Double?) {
        let parts = spec.split(separator: "~", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let name = parts.first, let field = registry.field(named: name) else {
            throw FieldError("--split-by '\(spec)': unknown field; known fields: \(registry.names.joined(separator: ", "))")
        }
        guard field != .labeled else { throw FieldError("--split-by labeled: a dataset needs labeled frames") }
        guard parts.count == 2 else { return (field, nil) }
        guard field.kind == .number else {
            throw FieldError("--split-by '\(spec)': a tolerance needs a number field; \(field.rawValue) is \(field.kind.typeName)")
        }
        guard let tolerance = Double(parts[1]), tolerance >= 0, tolerance.isFinite else {
            throw FieldError("--split-by '\(spec)': the tolerance must be a number >= 0")
        }
        return (field, tolerance)
    }

    /// Groups the distinct values of `field` among the frames `query` selects: ascending, a
    /// value joins the current group while it is within `tolerance` of the group's first value
    /// (nil: equal values only). Frames without a value are left out.
    public static func compute(field: QueryField, tolerance: Double?, where query: FrameQuery,
                               in store: CatalogStore) throws -> FieldSplit {
        let counts: [(QueryValue, Int)] = try store.dbQueue.read { db in
            let compiled = try query.compile(in: db)
            let rows = try Row.fetchAll(db, sql: """
                SELECT value, count(*) FROM (SELECT \(field.column) AS value FROM frames WHERE \(compiled.sql))
                WHERE value IS NOT NULL GROUP BY value ORDER BY value
                """, arguments: compiled.arguments)
            return rows.compactMap { row in
                QueryValue(row[0] as DatabaseValue, kind: field.kind).map { ($0, row[1] as Int) }
            }
        }
        var groups: [Group] = []
        let base = "(\(query.text))"
        if field.kind == .number {
            var current: (low: Double, high: Double, frames: Int)?
            func close() {
                guard let (low, high, frames) = current else { return }
                let unit = field.unit.map { " \($0)" } ?? ""
                let label = low == high ? "\(field.rawValue) \(FrameListing.number(low))\(unit)"
                    : "\(field.rawValue) \(FrameListing.number(low)) .. \(FrameListing.number(high))\(unit)"
                let name = low == high ? "\(field.rawValue)_\(FrameListing.number(low))"
                    : "\(field.rawValue)_\(FrameListing.number(low))_to_\(FrameListing.number(high))"
                groups.append(Group(label: label, frames: frames,
                                    query: "\(base) and \(field.rawValue) between \(low) and \(high)", datasetName: name))
            }
            for case (.number(let value), let frames) in counts {
                if let group = current, value - group.low <= (tolerance ?? 0) {
                    current = (group.low, value, group.frames + frames)
                } else {
                    close()
                    current = (value, value, frames)
                }
            }
            close()
        } else {
            for (value, frames) in counts {
                let literal: String = switch value {
                case .text(let text): "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
                default: value.plain
                }
                let slug = value.plain.unicodeScalars.map { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" ? String($0) : "_" }
                    .joined()
                groups.append(Group(label: "\(field.rawValue) \(value.plain)", frames: frames,
                                    query: "\(base) and \(field.rawValue) = \(literal)", datasetName: "\(field.rawValue)_\(slug)"))
            }
        }
        return FieldSplit(field: field, tolerance: tolerance, groups: groups)
    }

    /// One recipe per group: `template`'s parameters, the group's query and name.
    public func recipes(like template: DatasetRecipe) -> [DatasetRecipe] {
        groups.map { group in
            var recipe = template
            recipe.name = group.datasetName
            recipe.query = group.query
            recipe.description = "\(group.label) (split by \(field.rawValue)\(tolerance.map { " within \(FrameListing.number($0))" } ?? ""))"
            return recipe
        }
    }

    /// `split by defocus: 2 groups` and one line per group.
    public var summary: String {
        (["split by \(field.rawValue): \(groups.count) group\(groups.count == 1 ? "" : "s")"]
            + groups.map { "  \($0.label): \($0.frames) frame\($0.frames == 1 ? "" : "s") -> dataset \($0.datasetName)" })
            .joined(separator: "\n")
    }
}
