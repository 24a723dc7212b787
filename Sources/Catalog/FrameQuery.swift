import GRDB

/// A parsed frame query, e.g.
/// `material = "Au" and size in (2.2, 5, 10) and dose ~ 423 +- 20 and pixel_scale = 0.02`.
///
/// Grammar (keywords and field names are case-insensitive; string values are case-sensitive):
/// ```
/// query      := or
/// or         := and ("or" and)*
/// and        := not ("and" not)*
/// not        := "not" not | "(" query ")" | predicate
/// predicate  := FIELD ("=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=") VALUE
///             | FIELD ["not"] "in" "(" VALUE ("," VALUE)* ")"
///             | FIELD ["not"] "between" VALUE "and" VALUE
///             | FIELD "~" NUMBER ("+-" | "±") NUMBER
///             | FIELD "is" ["not"] "missing"
///             | "labeled" | BOOLEAN-FIELD
/// VALUE      := NUMBER | "quoted \"string\"" | 'quoted' | bare-word | DATE | true | false
/// ```
/// Semantics (the study's selection rules): `x ~ V +- M` is `|x - V| < M` (M > 0); `=` on a
/// number is `|x - V| < 1e-5`, and `in` applies that to each value; `between` is inclusive.
/// Text fields take `=`, `!=`, `in`; dates (`2021-08-26` or the study's `08/26/21`) also take
/// ordering and `between`; `labeled` is true when the frame has a label. A frame whose field
/// is unknown (NULL) fails every comparison, and `not` / `!=` select exactly the frames the
/// positive form does not (so they include unknowns); `is missing` selects the unknowns.
/// FIELD is a built-in field or, with `parse(_:fields:)`, any field a catalog registered;
/// a registered field is a `frames` column (`field_<id>`) with its own index.
///
/// Values never enter the SQL text: `compile()` binds them as arguments.
public struct FrameQuery: Equatable, Sendable, CustomStringConvertible {
    public let text: String
    public let expression: QueryExpression

    /// The study's default margin for `=` on numbers.
    public static let defaultMargin = 1e-5

    /// Parses a query over the built-in fields and, when given, a catalog's registered ones
    /// (`CatalogStore.fieldRegistry()`).
    /// - Throws: `QueryError` with the 1-based column where the query went wrong; an unknown
    ///   field's error lists the fields `fields` knows.
    public static func parse(_ text: String, fields: FieldRegistry = .builtIn) throws -> FrameQuery {
        var parser = try QueryParser(text, fields: fields)
        return FrameQuery(text: text, expression: try parser.parseQuery())
    }

    public var description: String { text }

    /// A SQL boolean expression over the `frames` table with `?` placeholders, and its
    /// arguments. Use as `SELECT ... FROM frames WHERE <sql>`.
    public struct Compiled: Sendable {
        public var sql: String
        /// The values bound to the `?` placeholders, in order.
        public var values: [DatabaseValue]
        public var arguments: StatementArguments { StatementArguments(values) }
    }

    public func compile() throws -> Compiled {
        var values: [DatabaseValue] = []
        let sql = try expression.sql(into: &values, storedValues: nil)
        return Compiled(sql: sql, values: values)
    }

    /// Like `compile()`, but each numeric range of a field with a value index (`=`, `in`, `~`,
    /// `between`, `<`, `<=` on size, dose, pixel_scale, magnification) becomes
    /// `column IN (the distinct values db holds in that range)`, when there are at most
    /// `StoredValues.limit` of them.
    ///
    /// Why: numeric equality is a range (the 1e-5 margin), and SQLite seeks an index on
    /// equalities followed by at most one range, so `material = "Ag" and size = 5 and
    /// pixel_scale = 0.02` would seek material and size and then read every pixel scale of
    /// them. With exact values it seeks all three and reads only the matching index entries.
    /// The study's fields take few distinct values, so the lists are short.
    ///
    /// The selection is the same as `compile()`'s for the catalog as db sees it: run the SQL in
    /// the same transaction (a write committed in between could add a value the list lacks).
    public func compile(in db: Database) throws -> Compiled {
        var values: [DatabaseValue] = []
        let sql = try expression.sql(into: &values) { field, interval in
            try StoredValues.distinct(of: field, in: interval, db: db)
        }
        return Compiled(sql: sql, values: values)
    }
}

/// The numbers a numeric leaf of a query accepts: `lower <(=) x <(=) upper`; a nil bound is open.
public struct NumericInterval: Equatable, Sendable {
    public var lower: Double?
    public var lowerInclusive: Bool
    public var upper: Double?
    public var upperInclusive: Bool

    public init(lower: Double?, lowerInclusive: Bool, upper: Double?, upperInclusive: Bool) {
        self.lower = lower
        self.lowerInclusive = lowerInclusive
        self.upper = upper
        self.upperInclusive = upperInclusive
    }

    /// `|x - value| < margin`.
    static func near(_ value: Double, margin: Double) -> NumericInterval {
        NumericInterval(lower: value - margin, lowerInclusive: false, upper: value + margin, upperInclusive: false)
    }
}

/// Looks up the distinct values a numeric column holds inside an interval, one index seek per
/// value, so that a query can name them exactly (see `FrameQuery.compile(in:)`).
public enum StoredValues {
    /// Past this many distinct values a range stays a range: the lookup costs one index seek per
    /// value and so does each value of the list, which would outgrow what it saves.
    public static let limit = 32

    /// The single-column index each expandable field is stepped through. The lookups name it
    /// with INDEXED BY, so a missing index is an error, never a silent scan of every frame.
    public static let indexes: [QueryField: String] = [
        .size: "frames_size", .dose: "frames_dose", .pixelScale: "frames_pixel_scale",
        .magnification: "frames_magnification",
    ]

    /// The single-column index of a field: `indexes` for built-in fields, `frames_field_<id>`
    /// for a registered number field.
    static func index(of field: QueryField) -> String? {
        if case .registered(let id) = field.storage { return field.kind == .number ? "frames_field_\(id)" : nil }
        return indexes[field]
    }

    /// The distinct values of `field` in `interval`, ascending; nil when the field has no value
    /// index, when the interval has no upper bound, or when there are more than `limit`.
    ///
    /// An upper bound is required because SQLite orders every text value above every number:
    /// `dose > 400` also selects a dose stored as text, which a list of numbers would miss.
    /// Below an upper bound only numbers (REAL, or INTEGER stored in the REAL column) qualify.
    public static func distinct(of field: QueryField, in interval: NumericInterval, db: Database) throws -> [Double]? {
        guard let index = index(of: field), let upper = interval.upper else { return nil }
        let column = field.column
        var found: [Double] = []
        var lower = interval.lower
        var lowerInclusive = interval.lowerInclusive
        while true {
            var sql = "SELECT \(column) FROM frames INDEXED BY \(index) WHERE \(column) \(interval.upperInclusive ? "<=" : "<") ?"
            var arguments: [DatabaseValue] = [upper.databaseValue]
            if let lower {
                sql += " AND \(column) \(lowerInclusive ? ">=" : ">") ?"
                arguments.append(lower.databaseValue)
            }
            sql += " ORDER BY \(column) LIMIT 1"
            guard let value = try Double.fetchOne(db.cachedStatement(sql: sql), arguments: StatementArguments(arguments))
            else { return found }
            found.append(value)
            if found.count > limit { return nil }
            // The next seek starts strictly above this value (0.0 and -0.0 are one value to SQL).
            lower = value
            lowerInclusive = false
        }
    }
}

/// A field a query can test: one of the study's built-in fields (a `frames` column, or
/// `labeled`), or a field a user registered (`hrtem field add`), whose values live in a typed,
/// indexed `frames` column of its own (`field_<id>`). Built-in fields are the static members (`.material`, `.dose`, ...);
/// `FieldRegistry` holds them together with the catalog's registered ones.
public struct QueryField: Hashable, Sendable, CustomStringConvertible {
    /// The value type of a field: `number` (REAL), `text`, `date` (ISO `yyyy-mm-dd` text) or
    /// `boolean` (stored 0/1; written `bool` on the command line).
    public enum Kind: String, Sendable, CaseIterable { case text, number, date, boolean }

    /// Where a field's values are stored.
    public enum Storage: Hashable, Sendable {
        /// A `frames` column (built-in fields).
        case column(String)
        /// Whether the frame has a label (an EXISTS over `labels`).
        case labeled
        /// A registered field: the `frames.field_<id>` column of this `fields.id`.
        case registered(id: Int64)
    }

    /// The field's name as queries write it (lower case).
    public let rawValue: String
    public let kind: Kind
    public let storage: Storage
    /// The unit values are stored in (e.g. `nm`), nil when the field has none.
    public let unit: String?
    /// What the field means, for `hrtem field list`.
    public let summary: String?

    public init(name: String, kind: Kind, storage: Storage, unit: String? = nil, summary: String? = nil) {
        self.rawValue = name.lowercased()
        self.kind = kind
        self.storage = storage
        self.unit = unit
        self.summary = summary
    }

    /// One of the built-in fields by name (case-insensitive), nil for any other name.
    public init?(rawValue: String) {
        guard let field = Self.allCases.first(where: { $0.rawValue == rawValue.lowercased() }) else { return nil }
        self = field
    }

    public static func == (a: QueryField, b: QueryField) -> Bool { a.rawValue == b.rawValue && a.storage == b.storage }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }

    public var description: String { rawValue }

    public var isBuiltIn: Bool {
        if case .registered = storage { return false }
        return true
    }

    private static func builtIn(_ name: String, _ kind: Kind, _ column: String, _ unit: String?, _ summary: String) -> QueryField {
        QueryField(name: name, kind: kind, storage: .column(column), unit: unit, summary: summary)
    }

    public static let material = builtIn("material", .text, "frames.material", nil, "nanoparticle material (Au, Ag, CdSe)")
    public static let size = builtIn("size", .number, "frames.particle_size_nm", "nm", "nanoparticle size")
    public static let shape = builtIn("shape", .text, "frames.shape", nil, "nanoparticle shape")
    public static let support = builtIn("support", .text, "frames.support", nil, "support film")
    public static let instrument = builtIn("instrument", .text, "frames.instrument", nil, "microscope")
    public static let dose = builtIn("dose", .number, "frames.dose", "e/A^2", "total electron dose")
    public static let doseRate = builtIn("dose_rate", .number, "frames.dose_rate", "e/A^2/s", "dose rate")
    public static let exposure = builtIn("exposure", .number, "frames.exposure_s", "s", "exposure time")
    public static let pixelScale = builtIn("pixel_scale", .number, "frames.pixel_scale_nm", "nm/px", "pixel size")
    public static let magnification = builtIn("magnification", .number, "frames.magnification_kx", "kx", "indicated magnification")
    public static let session = builtIn("session", .text, "frames.session", nil, "session folder")
    public static let date = builtIn("date", .date, "frames.date", nil, "acquisition date")
    public static let file = builtIn("file", .text, "frames.file_name", nil, "file name")
    public static let labeled = QueryField(name: "labeled", kind: .boolean, storage: .labeled, unit: nil,
                                           summary: "the frame has a label")

    /// The built-in fields, in the order listings show them.
    public static let allCases: [QueryField] = [
        .material, .size, .shape, .support, .instrument, .dose, .doseRate, .exposure, .pixelScale, .magnification,
        .session, .date, .file, .labeled,
    ]

    /// An SQL expression for the field's value of the `frames` row in scope (NULL when unknown).
    /// A registered field's is its own column, `frames.field_<id>`.
    public var column: String {
        switch storage {
        case .column(let column): column
        case .labeled: "EXISTS (SELECT 1 FROM labels WHERE labels.frame_id = frames.id)"
        case .registered(let id): "frames.field_\(id)"
        }
    }

    public static var names: [String] { allCases.map(\.rawValue) }
}

public enum QueryValue: Equatable, Sendable, CustomStringConvertible {
    case number(Double)
    case text(String)
    /// ISO `yyyy-mm-dd`.
    case date(String)
    case boolean(Bool)

    var databaseValue: DatabaseValue {
        switch self {
        case .number(let value): value.databaseValue
        case .text(let value), .date(let value): value.databaseValue
        case .boolean(let value): value.databaseValue
        }
    }

    public var description: String {
        switch self {
        case .number(let value): "\(value)"
        case .text(let value): "\"\(value)\""
        case .date(let value): value
        case .boolean(let value): "\(value)"
        }
    }
}

public enum ComparisonOperator: String, Sendable {
    case equal = "=", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
}

public indirect enum QueryExpression: Equatable, Sendable {
    case and(QueryExpression, QueryExpression)
    case or(QueryExpression, QueryExpression)
    case not(QueryExpression)
    case compare(QueryField, ComparisonOperator, QueryValue)
    case oneOf(QueryField, [QueryValue])
    case between(QueryField, QueryValue, QueryValue)
    /// `|field - value| < margin`.
    case near(QueryField, value: Double, margin: Double)
    /// `field is missing`: the frame has no value for the field.
    case missing(QueryField)

    /// Looks up the distinct values a field holds in an interval (nil: keep the range).
    typealias StoredValueLookup = (QueryField, NumericInterval) throws -> [Double]?

    func sql(into values: inout [DatabaseValue], storedValues: StoredValueLookup?) throws -> String {
        switch self {
        case .missing(let field):
            if field == .labeled { return "NOT \(field.column)" }
            return "(\(field.column) IS NULL)"
        case .and(let left, let right):
            return "(\(try left.sql(into: &values, storedValues: storedValues)) AND \(try right.sql(into: &values, storedValues: storedValues)))"
        case .or(let left, let right):
            return "(\(try left.sql(into: &values, storedValues: storedValues)) OR \(try right.sql(into: &values, storedValues: storedValues)))"
        case .not(let inner):
            // Two-valued: a NULL comparison counts as false, so `not` selects its complement.
            return "NOT coalesce(\(try inner.sql(into: &values, storedValues: storedValues)), 0)"
        case .near(let field, let value, let margin):
            if let stored = try storedValues?(field, .near(value, margin: margin)) {
                return Self.oneOfStored(field, stored, into: &values)
            }
            values.append((value - margin).databaseValue)
            values.append((value + margin).databaseValue)
            return "(\(field.column) > ? AND \(field.column) < ?)"
        case .between(let field, let low, let high):
            if case .number(let lower) = low, case .number(let upper) = high,
               let stored = try storedValues?(field, NumericInterval(lower: lower, lowerInclusive: true,
                                                                     upper: upper, upperInclusive: true)) {
                return Self.oneOfStored(field, stored, into: &values)
            }
            values.append(low.databaseValue)
            values.append(high.databaseValue)
            return "(\(field.column) BETWEEN ? AND ?)"
        case .oneOf(let field, let list):
            if field.kind == .number {
                // One list for the whole `in`: the union of the values inside each margin.
                if let storedValues {
                    var union: [Double] = []
                    var complete = true
                    for case .number(let number) in list {
                        guard let stored = try storedValues(field, .near(number, margin: FrameQuery.defaultMargin)) else {
                            complete = false
                            break
                        }
                        union.append(contentsOf: stored)
                    }
                    if complete { return Self.oneOfStored(field, Array(Set(union)).sorted(), into: &values) }
                }
                return "(" + (try list.map { value -> String in
                    guard case .number(let number) = value else { return "0" }
                    return try QueryExpression.near(field, value: number, margin: FrameQuery.defaultMargin)
                        .sql(into: &values, storedValues: nil)
                }).joined(separator: " OR ") + ")"
            }
            values.append(contentsOf: list.map(\.databaseValue))
            return "(\(field.column) IN (\(Array(repeating: "?", count: list.count).joined(separator: ", "))))"
        case .compare(let field, let op, let value):
            if field == .labeled, case .boolean(let wanted) = value {
                let positive = (op == .equal) == wanted
                return positive ? field.column : "NOT \(field.column)"
            }
            if op == .notEqual {
                return try QueryExpression.not(.compare(field, .equal, value)).sql(into: &values, storedValues: storedValues)
            }
            if case .number(let number) = value {
                switch op {
                case .equal:
                    return try QueryExpression.near(field, value: number, margin: FrameQuery.defaultMargin)
                        .sql(into: &values, storedValues: storedValues)
                case .less, .lessOrEqual:
                    if let stored = try storedValues?(field, NumericInterval(lower: nil, lowerInclusive: false, upper: number,
                                                                              upperInclusive: op == .lessOrEqual)) {
                        return Self.oneOfStored(field, stored, into: &values)
                    }
                default: break
                }
            }
            values.append(value.databaseValue)
            return "\(field.column) \(op.rawValue) ?"
        }
    }

    /// `column IN (?, ...)` over values read from the catalog; `0` (false) when there are none,
    /// which selects what the range would: no frame (a NULL column fails both forms).
    private static func oneOfStored(_ field: QueryField, _ stored: [Double], into values: inout [DatabaseValue]) -> String {
        guard !stored.isEmpty else { return "0" }
        values.append(contentsOf: stored.map(\.databaseValue))
        return "(\(field.column) IN (\(Array(repeating: "?", count: stored.count).joined(separator: ", "))))"
    }
}

/// A query that could not be parsed: where (1-based column, in characters) and what was wrong.
public struct QueryError: Error, Equatable, Sendable, CustomStringConvertible {
    public var query: String
    public var column: Int
    public var message: String
    /// Set when the error is an unknown field: the fields a query may use.
    public var validFields: [String]?

    public init(query: String, column: Int, message: String, validFields: [String]? = nil) {
        self.query = query
        self.column = column
        self.message = message
        self.validFields = validFields
    }

    public var description: String {
        var text = "query error at column \(column): \(message)\n  \(query)\n  "
        text += String(repeating: " ", count: max(0, column - 1)) + "^"
        if let validFields { text += "\nvalid fields: " + validFields.joined(separator: ", ") }
        return text
    }
}

// MARK: - Lexer

struct QueryToken: Equatable {
    enum Kind: Equatable {
        case word(String)        // field names, keywords, bare values
        case number(Double)
        case string(String)
        case date(String)        // ISO
        case symbol(String)      // = == != <> < <= > >= ~ +- ( ) ,
        case end
    }
    var kind: Kind
    var column: Int
    var text: String
}

struct QueryLexer {
    let query: String
    let characters: [Character]
    var index = 0

    init(_ query: String) {
        self.query = query
        characters = Array(query)
    }

    func error(_ message: String, at position: Int) -> QueryError {
        QueryError(query: query, column: position + 1, message: message)
    }

    mutating func tokens() throws -> [QueryToken] {
        var result: [QueryToken] = []
        while true {
            let token = try next()
            result.append(token)
            if token.kind == .end { return result }
        }
    }

    private func peek(_ offset: Int = 0) -> Character? {
        index + offset < characters.count ? characters[index + offset] : nil
    }

    private mutating func next() throws -> QueryToken {
        while let c = peek(), c.isWhitespace { index += 1 }
        let start = index
        guard let c = peek() else { return QueryToken(kind: .end, column: start + 1, text: "") }
        func token(_ kind: QueryToken.Kind) -> QueryToken {
            QueryToken(kind: kind, column: start + 1, text: String(characters[start..<index]))
        }
        if c == "\"" || c == "'" { return try string(quote: c) }
        if c.isASCIIDigit || ((c == "-" || c == "+" || c == ".") && (peek(1)?.isASCIIDigit ?? false))
            || (c == "-" && peek(1) == "." && (peek(2)?.isASCIIDigit ?? false)) {
            if let date = dateLiteral() { return QueryToken(kind: .date(date.iso), column: start + 1, text: date.text) }
            return try number()
        }
        if c.isLetter || c == "_" {
            while let c = peek(), c.isLetter || c.isNumber || c == "_" { index += 1 }
            return token(.word(String(characters[start..<index])))
        }
        let two = peek(1).map { String([c, $0]) } ?? ""
        if ["==", "!=", "<>", "<=", ">=", "+-"].contains(two) {
            index += 2
            return token(.symbol(two == "==" ? "=" : two == "<>" ? "!=" : two))
        }
        if "=<>~(),".contains(c) {
            index += 1
            return token(.symbol(String(c)))
        }
        if c == "±" {
            index += 1
            return token(.symbol("+-"))
        }
        if c == ";" {
            throw error("unexpected ';': a query is one expression (quote text that contains ';')", at: start)
        }
        throw error("unexpected character '\(c)'", at: start)
    }

    /// `"..."` or `'...'`; backslash escapes `\" \' \\ \n \t`.
    private mutating func string(quote: Character) throws -> QueryToken {
        let start = index
        index += 1
        var value = ""
        while let c = peek() {
            index += 1
            if c == quote {
                return QueryToken(kind: .string(value), column: start + 1, text: String(characters[start..<index]))
            }
            if c == "\\" {
                guard let escaped = peek() else { break }
                index += 1
                switch escaped {
                case "\"", "'", "\\": value.append(escaped)
                case "n": value.append("\n")
                case "t": value.append("\t")
                default:
                    throw error("unknown escape '\\\(escaped)' in string (use \\\" \\' \\\\ \\n \\t)", at: index - 2)
                }
                continue
            }
            value.append(c)
        }
        throw error("unterminated string: no closing \(quote)", at: start)
    }

    /// `2021-08-26` or `08/26/21` (`08/26/2021`) at the current position, when it is one.
    private mutating func dateLiteral() -> (iso: String, text: String)? {
        var end = index
        while end < characters.count, characters[end].isASCIIDigit || characters[end] == "-" || characters[end] == "/" {
            end += 1
        }
        let candidate = String(characters[index..<end])
        let looksISO = candidate.count == 10 && candidate.filter({ $0 == "-" }).count == 2
            && !candidate.hasPrefix("-")
        let looksStudy = candidate.filter({ $0 == "/" }).count == 2
        guard looksISO || looksStudy, let iso = StudyDate.iso(from: candidate) else { return nil }
        index = end
        return (iso, candidate)
    }

    private mutating func number() throws -> QueryToken {
        let start = index
        if peek() == "-" || peek() == "+" { index += 1 }
        while let c = peek(), c.isASCIIDigit { index += 1 }
        if peek() == ".", peek(1)?.isASCIIDigit ?? false {
            index += 1
            while let c = peek(), c.isASCIIDigit { index += 1 }
        } else if peek() == "." {
            index += 1
        }
        if peek() == "e" || peek() == "E" {
            let sign = (peek(1) == "-" || peek(1) == "+") ? 1 : 0
            if peek(1 + sign)?.isASCIIDigit ?? false {
                index += 1 + sign
                while let c = peek(), c.isASCIIDigit { index += 1 }
            }
        }
        let text = String(characters[start..<index])
        if let c = peek(), c.isLetter || c.isNumber || c == "_" || c == "." || c == "/" {
            throw error("malformed number '\(text)\(c)...': a number is digits, '.', and an optional exponent", at: start)
        }
        guard let value = Double(text), value.isFinite else {
            throw error("malformed number '\(text)'", at: start)
        }
        return QueryToken(kind: .number(value), column: start + 1, text: text)
    }
}

// MARK: - Parser

struct QueryParser {
    let query: String
    let tokens: [QueryToken]
    var position = 0

    let fields: FieldRegistry

    init(_ query: String, fields: FieldRegistry) throws {
        self.query = query
        self.fields = fields
        var lexer = QueryLexer(query)
        tokens = try lexer.tokens()
    }

    private var current: QueryToken { tokens[position] }

    private func error(_ message: String, at token: QueryToken, validFields: [String]? = nil) -> QueryError {
        QueryError(query: query, column: token.column, message: message, validFields: validFields)
    }

    private func describe(_ token: QueryToken) -> String {
        token.kind == .end ? "the end of the query" : "'\(token.text)'"
    }

    private func isKeyword(_ token: QueryToken, _ keyword: String) -> Bool {
        if case .word(let word) = token.kind { return word.lowercased() == keyword }
        return false
    }

    private mutating func accept(keyword: String) -> Bool {
        guard isKeyword(current, keyword) else { return false }
        position += 1
        return true
    }

    private mutating func accept(symbol: String) -> Bool {
        guard current.kind == .symbol(symbol) else { return false }
        position += 1
        return true
    }

    private mutating func expect(symbol: String, _ what: String) throws {
        guard accept(symbol: symbol) else { throw error("expected \(what), found \(describe(current))", at: current) }
    }

    mutating func parseQuery() throws -> QueryExpression {
        if current.kind == .end {
            throw error("empty query: write a condition such as material = \"Au\"", at: current)
        }
        let expression = try parseOr()
        guard current.kind == .end else {
            if current.kind == .symbol(")") { throw error("unbalanced ')': no '(' to close", at: current) }
            throw error("expected 'and', 'or' or the end of the query, found \(describe(current))", at: current)
        }
        return expression
    }

    private mutating func parseOr() throws -> QueryExpression {
        var left = try parseAnd()
        while accept(keyword: "or") { left = .or(left, try parseAnd()) }
        return left
    }

    private mutating func parseAnd() throws -> QueryExpression {
        var left = try parseNot()
        while accept(keyword: "and") { left = .and(left, try parseNot()) }
        return left
    }

    private mutating func parseNot() throws -> QueryExpression {
        if accept(keyword: "not") { return .not(try parseNot()) }
        if current.kind == .symbol("(") {
            let open = current
            position += 1
            if current.kind == .symbol(")") { throw error("empty parentheses: expected a condition", at: current) }
            let inner = try parseOr()
            guard accept(symbol: ")") else {
                if current.kind == .end { throw error("unclosed '(': expected ')'", at: open) }
                throw error("expected ')' to close the '(' at column \(open.column), found \(describe(current))",
                            at: current)
            }
            return inner
        }
        return try parsePredicate()
    }

    private static let keywords: Set<String> = ["and", "or", "not", "in", "between", "true", "false", "is"]

    private mutating func parsePredicate() throws -> QueryExpression {
        let fieldToken = current
        guard case .word(let name) = fieldToken.kind, !Self.keywords.contains(name.lowercased()) else {
            throw error("expected a field name, found \(describe(fieldToken))", at: fieldToken,
                        validFields: fields.names)
        }
        guard let field = fields.field(named: name) else {
            throw error("unknown field '\(name)'", at: fieldToken, validFields: fields.names)
        }
        position += 1
        let operatorToken = current

        if accept(keyword: "is") {
            let negated = accept(keyword: "not")
            guard accept(keyword: "missing") else {
                throw error("expected 'missing' after '\(name) is\(negated ? " not" : "")', found \(describe(current))",
                            at: current)
            }
            return negated ? .not(.missing(field)) : .missing(field)
        }

        if accept(keyword: "not") {
            if isKeyword(current, "in") || isKeyword(current, "between") {
                return .not(try parseSetTest(field, fieldToken: fieldToken))
            }
            throw error("expected 'in' or 'between' after '\(name) not', found \(describe(current))", at: current)
        }
        if isKeyword(current, "in") || isKeyword(current, "between") {
            return try parseSetTest(field, fieldToken: fieldToken)
        }
        if accept(symbol: "~") {
            guard field.kind == .number else {
                throw error("'~ V +- M' needs a numeric field; \(field.rawValue) is \(field.kind.rawValue)",
                            at: operatorToken)
            }
            let value = try parseNumber(after: "~")
            guard accept(symbol: "+-") else {
                throw error("expected '+-' and a margin after '~ \(value)', found \(describe(current))", at: current)
            }
            let marginToken = current
            let margin = try parseNumber(after: "+-")
            guard margin > 0 else { throw error("the margin must be positive, found \(marginToken.text)", at: marginToken) }
            return .near(field, value: value, margin: margin)
        }
        if case .symbol(let symbol) = current.kind, let op = ComparisonOperator(rawValue: symbol) {
            position += 1
            switch (field.kind, op) {
            case (.text, .less), (.text, .lessOrEqual), (.text, .greater), (.text, .greaterOrEqual),
                 (.boolean, .less), (.boolean, .lessOrEqual), (.boolean, .greater), (.boolean, .greaterOrEqual):
                throw error("'\(symbol)' does not apply to \(field.rawValue) (\(field.kind.rawValue)); use = != or in",
                            at: operatorToken)
            default: break
            }
            return .compare(field, op, try parseValue(for: field))
        }
        if field.kind == .boolean {
            // A bare `labeled` (or any yes/no field) reads as `labeled = true`.
            return .compare(field, .equal, .boolean(true))
        }
        throw error("expected an operator after '\(name)' (= != < <= > >= ~ in between, is missing), found \(describe(current))",
                    at: current)
    }

    private mutating func parseSetTest(_ field: QueryField, fieldToken: QueryToken) throws -> QueryExpression {
        if accept(keyword: "in") {
            guard field.kind != .boolean else {
                throw error("'in' does not apply to \(field.rawValue); use \(field.rawValue) = true or false",
                            at: tokens[position - 1])
            }
            try expect(symbol: "(", "'(' after 'in'")
            if current.kind == .symbol(")") { throw error("empty list: 'in' needs at least one value", at: current) }
            var values = [try parseValue(for: field)]
            while accept(symbol: ",") { values.append(try parseValue(for: field)) }
            guard accept(symbol: ")") else {
                throw error("expected ',' or ')' in the list, found \(describe(current))", at: current)
            }
            return .oneOf(field, values)
        }
        let betweenToken = current
        position += 1
        guard field.kind == .number || field.kind == .date else {
            throw error("'between' needs a numeric or date field; \(field.rawValue) is \(field.kind.rawValue)",
                        at: betweenToken)
        }
        let lowToken = current
        let low = try parseValue(for: field)
        guard accept(keyword: "and") else {
            throw error("expected 'and' in 'between A and B', found \(describe(current))", at: current)
        }
        let high = try parseValue(for: field)
        let emptyRange: Bool = switch (low, high) {
        case (.number(let a), .number(let b)): a > b
        case (.date(let a), .date(let b)): a > b
        default: false
        }
        if emptyRange { throw error("empty range: the lower bound is above the upper bound", at: lowToken) }
        return .between(field, low, high)
    }

    private mutating func parseNumber(after what: String) throws -> Double {
        guard case .number(let value) = current.kind else {
            throw error("expected a number after '\(what)', found \(describe(current))", at: current)
        }
        position += 1
        return value
    }

    private mutating func parseValue(for field: QueryField) throws -> QueryValue {
        let token = current
        switch (field.kind, token.kind) {
        case (.number, .number(let value)):
            position += 1
            return .number(value)
        case (.text, .string(let value)):
            position += 1
            return .text(value)
        case (.text, .word(let value)) where !Self.keywords.contains(value.lowercased()):
            position += 1
            return .text(value)
        case (.date, .date(let iso)):
            position += 1
            return .date(iso)
        case (.date, .string(let value)):
            guard let iso = StudyDate.iso(from: value) else {
                throw error("'\(value)' is not a date (write 2021-08-26 or 08/26/21)", at: token)
            }
            position += 1
            return .date(iso)
        case (.boolean, .word(let value)) where ["true", "false"].contains(value.lowercased()):
            position += 1
            return .boolean(value.lowercased() == "true")
        case (_, .end):
            throw error("expected a value for \(field.rawValue), found the end of the query", at: token)
        default:
            let wanted = switch field.kind {
            case .number: "a number"
            case .text: "a quoted string such as \"Au\""
            case .date: "a date such as 2021-08-26 or 08/26/21"
            case .boolean: "true or false"
            }
            throw error("\(field.rawValue) expects \(wanted), found \(describe(token))", at: token)
        }
    }
}
