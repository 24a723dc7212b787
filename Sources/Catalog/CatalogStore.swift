import Foundation
import GRDB
import GRDBSQLite

/// The catalog: one SQLite file (WAL, 10 s busy timeout) opened through GRDB, its schema
/// brought up to date by `CatalogSchema.migrator` on open.
///
/// Every mutating helper runs in one transaction; use `dbQueue.write { db in ... }` with the
/// `in db:` variants to group several changes into one transaction of your own.
public final class CatalogStore: Sendable {
    /// The database connection (serialized). Other modules read and write through it.
    public let dbQueue: DatabaseQueue
    /// Same as `dbQueue`, for code written against GRDB's `DatabaseWriter`.
    public var writer: any DatabaseWriter { dbQueue }
    /// The catalog file, nil for an in-memory catalog.
    public let fileURL: URL?

    /// Opens (creating the folder and file if needed) the catalog of a data folder.
    /// - Throws: file-system errors, `DatabaseError` when the file is not a usable catalog.
    public convenience init(folder: DataFolder) throws {
        try FileManager.default.createDirectory(at: folder.url, withIntermediateDirectories: true)
        try self.init(file: folder.catalogFile)
    }

    /// Opens (creating if needed) a catalog file at `file`; its folder must exist.
    public init(file: URL) throws {
        var configuration = Self.configuration
        configuration.prepareDatabase { db in
            // WAL lets readers (e.g. `hrtem query` in another shell) run while a writer works.
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // A query's matching rows are scattered over the file; reading them through a
            // memory map instead of one read() per page is what keeps large selections fast.
            try db.execute(sql: "PRAGMA mmap_size = 1073741824")
            try db.execute(sql: "PRAGMA cache_size = -65536")
        }
        dbQueue = try DatabaseQueue(path: file.path, configuration: configuration)
        fileURL = file
        try CatalogSchema.migrator.migrate(dbQueue)
    }

    /// A private in-memory catalog (tests, previews).
    public init(inMemory: Void = ()) throws {
        dbQueue = try DatabaseQueue(configuration: Self.configuration)
        fileURL = nil
        try CatalogSchema.migrator.migrate(dbQueue)
    }

    private static var configuration: Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.foreignKeysEnabled = true
        configuration.label = "hrtem-catalog"
        return configuration
    }

    // MARK: Frames

    /// The frames a query selects, in catalog order (metadata-table row order, then id).
    /// - Throws: `QueryError` for a malformed query (with its column), `DatabaseError`.
    public func frames(matching query: String) throws -> [FrameRecord] {
        try frames(matching: parseQuery(query))
    }

    public func frames(matching query: FrameQuery) throws -> [FrameRecord] {
        try dbQueue.read { db in try Self.frames(matching: query, in: db) }
    }

    /// How many frames a query selects.
    public func count(matching query: String) throws -> Int {
        try count(matching: parseQuery(query))
    }

    public func count(matching query: FrameQuery) throws -> Int {
        try dbQueue.read { db in
            let compiled = try query.compile(in: db)
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM frames WHERE \(compiled.sql)",
                                    arguments: compiled.arguments) ?? 0
        }
    }

    /// The ids of the frames a query selects, in catalog order (cheaper than records when the
    /// caller only needs identities).
    public func frameIds(matching query: String) throws -> [Int64] {
        try frameIds(matching: parseQuery(query))
    }

    public func frameIds(matching query: FrameQuery) throws -> [Int64] {
        try dbQueue.read { db in
            let compiled = try query.compile(in: db)
            // The query indexes end in metadata_row, so this reads no table row. The pairs are
            // sorted here (CatalogOrderKey): SQLite's sorter took longer than the whole index
            // read (about 7 of 10 ms for 17k ids, measured with catalog_floor.c's method).
            let statement = try db.makeStatement(
                sql: "SELECT frames.metadata_row, frames.id FROM frames WHERE \(compiled.sql)")
            let rows = try Row.fetchCursor(statement, arguments: compiled.arguments)
            var keys: [CatalogOrderKey] = []
            while try rows.next() != nil {
                let columns = statement.sqliteStatement
                let metadataRow = sqlite3_column_type(columns, 0) == SQLITE_NULL ? nil : sqlite3_column_int64(columns, 0)
                keys.append(CatalogOrderKey(metadataRow: metadataRow, id: sqlite3_column_int64(columns, 1)))
            }
            keys.sort()
            return keys.map(\.id)
        }
    }

    /// Every frame, in catalog order.
    public func allFrames() throws -> [FrameRecord] {
        try dbQueue.read { db in
            try FrameRecord.fetchAll(db, sql: "SELECT \(Self.frameColumns) FROM frames ORDER BY \(Self.frameOrder)")
        }
    }

    public func frame(session: String, file: String) throws -> FrameRecord? {
        try dbQueue.read { db in try Self.frame(session: session, file: file, in: db) }
    }

    public func frame(id: Int64) throws -> FrameRecord? {
        try dbQueue.read { db in
            try FrameRecord.fetchOne(db, sql: "SELECT \(Self.frameColumns) FROM frames WHERE id = ?", arguments: [id])
        }
    }

    /// Inserts the frame, or replaces every column of the frame with the same (session, file
    /// name) keeping its id. Creates the session when new. Returns the stored record (id set).
    @discardableResult
    public func upsertFrame(_ frame: FrameRecord) throws -> FrameRecord {
        try dbQueue.write { db in try Self.upsertFrame(frame, in: db) }
    }

    /// Inserts many new frames in one transaction with one prepared statement (fast path for
    /// bulk loads). Creates missing sessions. Fails, inserting nothing, if any frame's
    /// (session, file name) already exists.
    public func insertFrames(_ frames: [FrameRecord]) throws {
        try dbQueue.write { db in
            var known = Set(try String.fetchAll(db, sql: "SELECT folder FROM sessions"))
            for frame in frames where !known.contains(frame.session) {
                try Self.ensureSession(frame.session, in: db)
                known.insert(frame.session)
            }
            let columns = FrameRecord.columnNames.dropFirst()
            let statement = try db.makeStatement(sql: """
                INSERT INTO frames (\(columns.joined(separator: ", ")))
                VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))
                """)
            for frame in frames {
                try statement.execute(arguments: frame.argumentsWithoutId)
            }
        }
    }

    // MARK: Sessions and labels

    public func sessions() throws -> [SessionRecord] {
        try dbQueue.read { db in try SessionRecord.order(Column("folder")).fetchAll(db) }
    }

    /// The labels of a frame (one per source).
    public func labels(frameId: Int64) throws -> [LabelRecord] {
        try dbQueue.read { db in
            try LabelRecord.filter(Column("frame_id") == frameId).order(Column("source")).fetchAll(db)
        }
    }

    /// Inserts the label, or replaces the label of the same (frame, source) keeping its id.
    @discardableResult
    public func upsertLabel(_ label: LabelRecord) throws -> LabelRecord {
        try dbQueue.write { db in try Self.upsertLabel(label, in: db) }
    }

    // MARK: Building blocks for callers' own transactions

    /// The columns `FrameRecord(row:)` reads, in order, for raw SQL.
    public static let frameColumns = FrameRecord.columnNames.map { "frames.\($0)" }.joined(separator: ", ")
    /// Catalog order: the metadata table's row order first (the study's selection order).
    /// `CatalogOrderKey` sorts the same way in Swift.
    public static let frameOrder = "frames.metadata_row IS NULL, frames.metadata_row, frames.id"

    public static func frames(matching query: FrameQuery, in db: Database) throws -> [FrameRecord] {
        let compiled = try query.compile(in: db)
        // No ORDER BY: SQLite's sorter copies every column of every selected row into a
        // temporary b-tree and back; ordering the decoded records here is cheaper.
        let statement = try db.makeStatement(sql: "SELECT \(frameColumns) FROM frames WHERE \(compiled.sql)")
        let rows = try Row.fetchCursor(statement, arguments: compiled.arguments)
        var records: [FrameRecord] = []
        while try rows.next() != nil {
            records.append(FrameRecord(sqliteStatement: statement.sqliteStatement))
        }
        // Each index seek yields its rows in catalog order, so this merges a few sorted runs.
        records.sort { CatalogOrderKey($0) < CatalogOrderKey($1) }
        return records
    }

    public static func frame(session: String, file: String, in db: Database) throws -> FrameRecord? {
        try FrameRecord.fetchOne(
            db, sql: "SELECT \(frameColumns) FROM frames WHERE session = ? AND file_name = ?",
            arguments: [session, file])
    }

    @discardableResult
    public static func upsertFrame(_ frame: FrameRecord, in db: Database) throws -> FrameRecord {
        try ensureSession(frame.session, in: db)
        return try upsert(frame, idBy: "SELECT id FROM frames WHERE session = ? AND file_name = ?",
                          arguments: [frame.session, frame.fileName], in: db)
    }

    /// Creates the session row if missing (date from a `yyyy_mm_dd` folder prefix).
    public static func ensureSession(_ folder: String, in db: Database) throws {
        try db.execute(sql: "INSERT INTO sessions (folder, date) VALUES (?, ?) ON CONFLICT(folder) DO NOTHING",
                       arguments: [folder, sessionDate(fromFolder: folder)])
    }

    @discardableResult
    public static func upsertLabel(_ label: LabelRecord, in db: Database) throws -> LabelRecord {
        try upsert(label, idBy: "SELECT id FROM labels WHERE frame_id = ? AND source = ?",
                   arguments: [label.frameId, label.source], in: db)
    }

    /// Updates the row that `idSQL` finds by the record's unique key, or inserts the record;
    /// returns it with its row id.
    private static func upsert<Record: MutablePersistableRecord & RowIdentified>(
        _ record: Record, idBy idSQL: String, arguments: StatementArguments, in db: Database) throws -> Record {
        var stored = record
        stored.id = try Int64.fetchOne(db, sql: idSQL, arguments: arguments)
        if stored.id != nil { try stored.update(db) } else { try stored.insert(db) }
        return stored
    }

    /// `2021_08_26 5nm Au ...` -> `2021-08-26`; nil when the folder has no such prefix.
    public static func sessionDate(fromFolder folder: String) -> String? {
        let scalars = Array(folder.utf8.prefix(10))
        guard scalars.count == 10 else { return nil }
        let digitPositions = [0, 1, 2, 3, 5, 6, 8, 9]
        guard digitPositions.allSatisfy({ scalars[$0] >= 48 && scalars[$0] <= 57 }),
              scalars[4] == UInt8(ascii: "_") || scalars[4] == UInt8(ascii: "-"),
              scalars[7] == scalars[4] else { return nil }
        let text = String(decoding: scalars, as: UTF8.self)
        let iso = text.replacingOccurrences(of: "_", with: "-")
        return StudyDate.isValidISO(iso) ? iso : nil
    }
}

/// A frame's place in catalog order (`CatalogStore.frameOrder`): frames with a metadata-table
/// row first, by that row, then the others; ties by id.
struct CatalogOrderKey: Comparable {
    var metadataRow: Int64?
    var id: Int64

    init(metadataRow: Int64?, id: Int64) {
        self.metadataRow = metadataRow
        self.id = id
    }

    init(_ frame: FrameRecord) {
        self.init(metadataRow: frame.metadataRow.map(Int64.init), id: frame.id ?? 0)
    }

    static func < (a: CatalogOrderKey, b: CatalogOrderKey) -> Bool {
        switch (a.metadataRow, b.metadataRow) {
        case let (x?, y?): return x != y ? x < y : a.id < b.id
        case (.some, nil): return true
        case (nil, .some): return false
        case (nil, nil): return a.id < b.id
        }
    }
}
