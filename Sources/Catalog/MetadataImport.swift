import Foundation
import GRDB
import Micrograph

/// What an import of a metadata table did.
public struct MetadataImportReport: Sendable, Equatable {
    /// A frame whose metadata the import changed: which fields, from what, to what.
    public struct Change: Sendable, Equatable {
        public var session: String
        public var fileName: String
        public var line: Int
        public var fields: [(name: String, old: String, new: String)]

        public static func == (a: Change, b: Change) -> Bool {
            a.session == b.session && a.fileName == b.fileName && a.line == b.line
                && a.fields.map { [$0.name, $0.old, $0.new] } == b.fields.map { [$0.name, $0.old, $0.new] }
        }
    }

    public var source: String
    public var rows: Int
    public var inserted: Int
    public var changed: [Change]
    public var unchanged: Int
    public var sessionsCreated: Int
    /// Per-row warnings (`file:line: ...`): dose != rate x exposure beyond 1%, names that do not
    /// follow the convention, name and table disagreeing.
    public var warnings: [String]

    /// One line: `407 rows from X: 407 new, 0 changed, 0 unchanged; 11 new sessions`.
    public var summary: String {
        "\(rows) rows from \(source): \(inserted) new, \(changed.count) changed, \(unchanged) unchanged; "
            + "\(sessionsCreated) new session\(sessionsCreated == 1 ? "" : "s")"
    }
}

/// Imports the study's published metadata table (`Dataset_metadata.csv`) into the catalog.
///
/// The table is validated completely before anything is written, then written in one
/// transaction: a table with any bad row imports nothing. A frame is identified by
/// (`Folder`, `File name`); a row for a known frame updates its metadata when it differs and
/// the report names the changed fields; file-related columns (path, hash...) are never touched.
public enum MetadataImporter {
    /// The exact header of the study's table.
    public static let header = [
        "File name", "Date", "Material", "Nanoparticle Size (nm)", "Nanoparticle Shape", "Support", "Instrument",
        "Dosage (e/A2)", "Pixel Scale (nm)", "Folder",
    ]

    /// Relative tolerance of the dose = rate x exposure check.
    public static let doseTolerance = 0.01

    /// A validated row: the frame's metadata plus what the import should warn about.
    public struct Row: Sendable {
        public var frame: FrameRecord
        public var line: Int
    }

    /// Parses and validates the whole table (no catalog access).
    /// - Parameter source: a name for messages and `frames.metadata_source` (e.g. the file name).
    /// - Throws: `FormatError` naming the line and column of the first problem (wrong header,
    ///   ragged row, bad number, bad date, missing key, duplicate (Folder, File name)).
    public static func parse(_ data: Data, source: String) throws -> (rows: [Row], warnings: [String]) {
        let table = try CSVTable(data: data, file: source)
        guard let headerRecord = table.records.first else {
            throw FormatError(file: source, line: 1, column: 1, "empty file: expected the header \(headerText)")
        }
        for (index, expected) in header.enumerated() {
            let found = index < headerRecord.fields.count ? headerRecord.fields[index] : nil
            if found?.trimmingCharacters(in: .whitespaces) != expected {
                throw FormatError(file: source, line: headerRecord.line, column: index + 1,
                                  "wrong header: column \(index + 1) should be '\(expected)', found "
                                  + (found.map { "'\($0)'" } ?? "nothing") + "; expected header: \(headerText)")
            }
        }
        if headerRecord.fields.count > header.count {
            throw FormatError(file: source, line: headerRecord.line, column: header.count + 1,
                              "wrong header: unexpected column '\(headerRecord.fields[header.count])'; "
                              + "expected header: \(headerText)")
        }

        var rows: [Row] = []
        var warnings: [String] = []
        var seen: [String: Int] = [:]
        for (rowIndex, record) in table.records.dropFirst().enumerated() {
            let line = record.line
            guard record.fields.count == header.count else {
                throw FormatError(file: source, line: line, column: min(record.fields.count, header.count) + 1,
                                  "expected \(header.count) fields, found \(record.fields.count)")
            }
            func fail(_ column: Int, _ message: String) -> FormatError {
                FormatError(file: source, line: line, column: column + 1,
                            "column '\(header[column])': \(message)")
            }
            func text(_ column: Int, required: Bool = false) throws -> String? {
                let value = record.fields[column].trimmingCharacters(in: .whitespaces)
                if value.isEmpty {
                    if required { throw fail(column, "empty; a value is required") }
                    return nil
                }
                return value
            }
            func number(_ column: Int) throws -> Double? {
                guard let value = try text(column) else { return nil }
                guard let number = Double(value), number.isFinite else {
                    throw fail(column, "'\(value)' is not a number")
                }
                guard number > 0 else { throw fail(column, "\(value) must be positive") }
                return number
            }
            let fileName = try text(0, required: true)!
            let folder = try text(9, required: true)!
            var date: String?
            if let value = try text(1) {
                guard let iso = StudyDate.iso(fromStudy: value) else {
                    throw fail(1, "'\(value)' is not a date MM/DD/YY")
                }
                date = iso
            }
            let key = folder + "\u{0}" + fileName
            if let first = seen[key] {
                throw FormatError(file: source, line: line, column: 1,
                                  "duplicate frame: '\(fileName)' in folder '\(folder)' is already on line \(first)")
            }
            seen[key] = line
            var frame = FrameRecord(
                session: folder, fileName: fileName, metadataSource: source, metadataRow: rowIndex + 1,
                material: try text(2), particleSizeNm: try number(3), shape: try text(4), support: try text(5),
                instrument: try text(6), dose: try number(7), pixelScaleNm: try number(8), date: date)

            let place = "\(source):\(line)"
            do {
                let name = try StudyFileName(parsing: fileName)
                frame.magnificationKx = name.magnificationKx
                frame.doseRate = name.doseRate
                frame.exposureSeconds = name.exposureSeconds
                if let dose = frame.dose, abs(name.dose - dose) > doseTolerance * dose {
                    warnings.append("\(place): dose \(format(dose)) e/A^2 but the file name gives "
                                    + "\(format(name.doseRate)) e/A^2/s x \(format(name.exposureSeconds)) s = "
                                    + "\(format(name.dose)) (off by more than 1%)")
                }
                if let material = frame.material, material != name.material {
                    warnings.append("\(place): material '\(material)' but the file name says '\(name.material)'")
                }
                if let date, let nameDate = name.date, nameDate != date {
                    warnings.append("\(place): date \(date) but the file name says \(nameDate)")
                }
            } catch {
                warnings.append("\(place): '\(fileName)' does not follow the study's file-name convention; "
                                + "magnification, dose rate and exposure left unknown")
            }
            rows.append(Row(frame: frame, line: line))
        }
        return (rows, warnings)
    }

    /// Validates the whole table, then writes it in one transaction.
    /// - Throws: `FormatError` for a bad table (nothing written), `DatabaseError`.
    public static func importTable(_ data: Data, source: String, into store: CatalogStore) throws -> MetadataImportReport {
        let (rows, warnings) = try parse(data, source: source)
        return try store.dbQueue.write { db in
            try write(rows, warnings: warnings, source: source, in: db)
        }
    }

    /// Writes validated rows inside the caller's transaction.
    public static func write(_ rows: [Row], warnings: [String], source: String,
                             in db: Database) throws -> MetadataImportReport {
        var report = MetadataImportReport(source: source, rows: rows.count, inserted: 0, changed: [], unchanged: 0,
                                          sessionsCreated: 0, warnings: warnings)
        var knownSessions = Set(try String.fetchAll(db, sql: "SELECT folder FROM sessions"))
        let lookup = try db.cachedStatement(
            sql: "SELECT \(CatalogStore.frameColumns) FROM frames WHERE session = ? AND file_name = ?")
        for row in rows {
            let incoming = row.frame
            if !knownSessions.contains(incoming.session) {
                try CatalogStore.ensureSession(incoming.session, in: db)
                knownSessions.insert(incoming.session)
                report.sessionsCreated += 1
            }
            let source = ValueSource(.table, "\(source) line \(row.line)")
            guard var existing = try FrameRecord.fetchOne(lookup, arguments: [incoming.session, incoming.fileName]) else {
                var record = incoming
                try record.insert(db)
                if let id = record.id { try noteSources(source, of: record, frameId: id, isNewFrame: true, in: db) }
                report.inserted += 1
                continue
            }
            // Values typed with `hrtem set` outrank a table: the import leaves them alone.
            let pinned = Set(try String.fetchAll(db.cachedStatement(sql: "SELECT field FROM value_sources WHERE frame_id = ? AND kind = ?"),
                                                 arguments: [existing.id, ValueSource.Kind.set.rawValue]))
            let differences = metadataDifferences(from: existing, to: incoming).filter { !pinned.contains($0.name) }
            let placeChanged = existing.metadataSource != incoming.metadataSource
                || existing.metadataRow != incoming.metadataRow
            if differences.isEmpty && !placeChanged {
                report.unchanged += 1
                continue
            }
            let before = existing
            existing.copyMetadata(from: incoming)
            existing.restore(pinned, from: before)
            try existing.update(db)
            if let id = existing.id {
                try noteSources(source, of: existing, frameId: id, in: db)
                for change in differences {
                    try db.cachedStatement(sql: """
                        INSERT INTO value_history (frame_id, field, old_value, new_value, kind, detail) VALUES (?, ?, ?, ?, ?, ?)
                        """).execute(arguments: [id, change.name, change.old, change.new, source.kind.rawValue, source.detail])
                }
            }
            if differences.isEmpty {
                report.unchanged += 1
            } else {
                report.changed.append(.init(session: incoming.session, fileName: incoming.fileName, line: row.line,
                                            fields: differences))
            }
        }
        return report
    }

    /// Records the table as the source of every metadata value the frame has.
    static func noteSources(_ source: ValueSource, of frame: FrameRecord, frameId: Int64, isNewFrame: Bool = false,
                            in db: Database) throws {
        let known: [(QueryField, Bool)] = [
            (.material, frame.material != nil), (.size, frame.particleSizeNm != nil), (.shape, frame.shape != nil),
            (.support, frame.support != nil), (.instrument, frame.instrument != nil), (.dose, frame.dose != nil),
            (.pixelScale, frame.pixelScaleNm != nil), (.date, frame.date != nil),
        ]
        for (field, present) in known where present {
            try FrameValues.noteSource(source, of: field, frameId: frameId, isNewFrame: isNewFrame, in: db)
        }
        let fromName = ValueSource(.name, "the study's convention")
        for (field, present) in [(QueryField.magnification, frame.magnificationKx != nil), (.doseRate, frame.doseRate != nil),
                                 (.exposure, frame.exposureSeconds != nil)] where present {
            try FrameValues.noteSource(fromName, of: field, frameId: frameId, isNewFrame: isNewFrame, in: db)
        }
    }

    static var headerText: String { header.joined(separator: ",") }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? "\(Int64(value))" : "\((value * 1e4).rounded() / 1e4)"
    }

    private static func metadataDifferences(from old: FrameRecord, to new: FrameRecord)
        -> [(name: String, old: String, new: String)] {
        var result: [(name: String, old: String, new: String)] = []
        func compare(_ name: String, _ a: String?, _ b: String?) {
            if a != b { result.append((name, a ?? "(none)", b ?? "(none)")) }
        }
        func compare(_ name: String, _ a: Double?, _ b: Double?) {
            if a != b { result.append((name, a.map { FrameListing.number($0) } ?? "(none)",
                                       b.map { FrameListing.number($0) } ?? "(none)")) }
        }
        compare("material", old.material, new.material)
        compare("size", old.particleSizeNm, new.particleSizeNm)
        compare("shape", old.shape, new.shape)
        compare("support", old.support, new.support)
        compare("instrument", old.instrument, new.instrument)
        compare("dose", old.dose, new.dose)
        compare("dose_rate", old.doseRate, new.doseRate)
        compare("exposure", old.exposureSeconds, new.exposureSeconds)
        compare("pixel_scale", old.pixelScaleNm, new.pixelScaleNm)
        compare("magnification", old.magnificationKx, new.magnificationKx)
        compare("date", old.date, new.date)
        return result
    }
}

extension FrameRecord {
    /// Puts back the named metadata fields (query-field names) from `old`.
    mutating func restore(_ fields: Set<String>, from old: FrameRecord) {
        for name in fields {
            switch name {
            case "material": material = old.material
            case "size": particleSizeNm = old.particleSizeNm
            case "shape": shape = old.shape
            case "support": support = old.support
            case "instrument": instrument = old.instrument
            case "dose": dose = old.dose
            case "dose_rate": doseRate = old.doseRate
            case "exposure": exposureSeconds = old.exposureSeconds
            case "pixel_scale": pixelScaleNm = old.pixelScaleNm
            case "magnification": magnificationKx = old.magnificationKx
            case "date": date = old.date
            default: break
            }
        }
    }

    /// Takes the metadata-table fields of `other`, leaving identity and file fields alone.
    mutating func copyMetadata(from other: FrameRecord) {
        metadataSource = other.metadataSource
        metadataRow = other.metadataRow
        material = other.material
        particleSizeNm = other.particleSizeNm
        shape = other.shape
        support = other.support
        instrument = other.instrument
        dose = other.dose
        doseRate = other.doseRate
        exposureSeconds = other.exposureSeconds
        pixelScaleNm = other.pixelScaleNm
        magnificationKx = other.magnificationKx
        date = other.date
    }
}
