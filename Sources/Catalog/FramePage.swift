import Foundation
import GRDB
import Micrograph

/// A slice of the frames a query selects, in catalog order, with the total: what a page of a
/// browser or any paged listing shows without decoding every selected record.
public struct FramePage: Sendable {
    /// How many frames the query selects in all.
    public var total: Int
    /// The position of the first frame of `frames` among them (0-based).
    public var offset: Int
    public var frames: [FrameRecord]
}

/// The ids a query selects in catalog order, remembered so that the next page of the same
/// query reads only its own records. Kept per query text and the catalog's change counter, so a
/// write by any connection makes the next request select afresh.
public final class FrameSelectionCache: Sendable {
    private struct Key: Hashable { var query: String; var generation: Int64 }
    private let entries = Locked<[Key: [Int64]]>([:])
    private let capacity: Int

    public init(capacity: Int = 16) { self.capacity = capacity }

    fileprivate func ids(for query: String, generation: Int64, compute: () throws -> [Int64]) rethrows -> [Int64] {
        let key = Key(query: query, generation: generation)
        if let hit = entries.withLock({ $0[key] }) { return hit }
        let ids = try compute()
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll() }
            entries[key] = ids
        }
        return ids
    }
}

extension CatalogStore {
    /// The frames `query` selects (every frame when nil) from position `offset`, at most `limit`
    /// of them, and how many it selects in all. The query goes through the query compiler like
    /// every other selection (values bound as parameters).
    public func page(matching query: FrameQuery?, offset: Int, limit: Int,
                     cache: FrameSelectionCache? = nil) throws -> FramePage {
        precondition(offset >= 0 && limit >= 0, "a page starts at 0 or later and holds 0 or more frames")
        return try dbQueue.read { db in
            let select = { () throws -> [Int64] in try Self.frameIds(matching: query, in: db) }
            let ids = try cache.map { try $0.ids(for: query?.text ?? "", generation: try Self.changeCounter(db), compute: select) }
                ?? select()
            let start = min(offset, ids.count)
            let slice = Array(ids[start..<min(ids.count, start + limit)])
            guard !slice.isEmpty else { return FramePage(total: ids.count, offset: start, frames: []) }
            let records = try FrameRecord.fetchAll(
                db, sql: "SELECT \(Self.frameColumns) FROM frames WHERE id IN (\(Array(repeating: "?", count: slice.count).joined(separator: ",")))",
                arguments: StatementArguments(slice))
            let byId = Dictionary(uniqueKeysWithValues: records.map { ($0.id ?? 0, $0) })
            return FramePage(total: ids.count, offset: start, frames: slice.compactMap { byId[$0] })
        }
    }

    /// The ids `query` selects (every frame when nil), in catalog order, read from the indexes.
    static func frameIds(matching query: FrameQuery?, in db: Database) throws -> [Int64] {
        let compiled = try query?.compile(in: db)
        let statement = try db.makeStatement(
            sql: "SELECT frames.metadata_row, frames.id FROM frames" + (compiled.map { " WHERE \($0.sql)" } ?? ""))
        let rows = try Row.fetchCursor(statement, arguments: compiled?.arguments ?? StatementArguments())
        var keys: [CatalogOrderKey] = []
        while let row = try rows.next() {
            keys.append(CatalogOrderKey(metadataRow: row[0], id: row[1]))
        }
        keys.sort()
        return keys.map(\.id)
    }

    /// A number that changes whenever the catalog changes (for caches of what was read from it).
    public func changeCounter() throws -> Int64 {
        try dbQueue.read { db in try Self.changeCounter(db) }
    }

    /// A number that changes whenever the catalog changes: SQLite's data version moves on
    /// commits of other connections, total_changes() on this connection's own.
    static func changeCounter(_ db: Database) throws -> Int64 {
        let row = try Row.fetchOne(db, sql: "SELECT (SELECT data_version FROM pragma_data_version), total_changes()")
        let others: Int64 = row?[0] ?? 0, own: Int64 = row?[1] ?? 0
        return others &* 1_000_003 &+ own
    }
}
