import Foundation
import GRDB
import GRDBSQLite

/// A microscope session: one folder of frames (the study's `Folder` column; it may contain
/// spaces and `/`).
public struct SessionRecord: Codable, Equatable, Sendable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "sessions"
    public var id: Int64?
    public var folder: String
    /// ISO `yyyy-mm-dd`, when known (from the folder's `yyyy_mm_dd` prefix or the table).
    public var date: String?

    public init(id: Int64? = nil, folder: String, date: String? = nil) {
        self.id = id
        self.folder = folder
        self.date = date
    }

    enum CodingKeys: String, CodingKey { case id, folder, date }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// One HRTEM frame. Its identity is (`session`, `fileName`): file names alone repeat across
/// sessions in the study.
///
/// Metadata columns come from the metadata table and the file-name convention; the file
/// columns (`path` ... `facts`) are filled when the frame is ingested. Units: nm, e/A^2,
/// e/A^2/s, s, nm/px, kx; `date` is ISO `yyyy-mm-dd`. `facts` is JSON text (DM tags,
/// microscope facts).
public struct FrameRecord: Equatable, Sendable, FetchableRecord, MutablePersistableRecord, RowIdentified {
    public static let databaseTableName = "frames"

    public var id: Int64?
    /// The session folder (`sessions.folder`).
    public var session: String
    public var fileName: String
    /// The metadata table this frame's metadata came from, and its 1-based data row there
    /// (queries return frames in this order, the study's selection order).
    public var metadataSource: String?
    public var metadataRow: Int?
    public var material: String?
    public var particleSizeNm: Double?
    public var shape: String?
    public var support: String?
    public var instrument: String?
    /// Total dose, e/A^2.
    public var dose: Double?
    /// Dose rate, e/A^2/s.
    public var doseRate: Double?
    public var exposureSeconds: Double?
    public var pixelScaleNm: Double?
    public var magnificationKx: Double?
    public var date: String?

    public var path: String?
    public var byteSize: Int64?
    public var sha256: String?
    public var format: String?
    public var width: Int?
    public var height: Int?
    public var pixelType: String?
    public var ingestedAt: String?
    public var facts: String?

    public init(id: Int64? = nil, session: String, fileName: String,
                metadataSource: String? = nil, metadataRow: Int? = nil,
                material: String? = nil, particleSizeNm: Double? = nil, shape: String? = nil,
                support: String? = nil, instrument: String? = nil, dose: Double? = nil,
                doseRate: Double? = nil, exposureSeconds: Double? = nil, pixelScaleNm: Double? = nil,
                magnificationKx: Double? = nil, date: String? = nil,
                path: String? = nil, byteSize: Int64? = nil, sha256: String? = nil, format: String? = nil,
                width: Int? = nil, height: Int? = nil, pixelType: String? = nil,
                ingestedAt: String? = nil, facts: String? = nil) {
        self.id = id
        self.session = session
        self.fileName = fileName
        self.metadataSource = metadataSource
        self.metadataRow = metadataRow
        self.material = material
        self.particleSizeNm = particleSizeNm
        self.shape = shape
        self.support = support
        self.instrument = instrument
        self.dose = dose
        self.doseRate = doseRate
        self.exposureSeconds = exposureSeconds
        self.pixelScaleNm = pixelScaleNm
        self.magnificationKx = magnificationKx
        self.date = date
        self.path = path
        self.byteSize = byteSize
        self.sha256 = sha256
        self.format = format
        self.width = width
        self.height = height
        self.pixelType = pixelType
        self.ingestedAt = ingestedAt
        self.facts = facts
    }

    /// Column names in the order `init(row:)` reads them; `SELECT` these for the fast path.
    public static let columnNames = [
        "id", "session", "file_name", "metadata_source", "metadata_row", "material", "particle_size_nm",
        "shape", "support", "instrument", "dose", "dose_rate", "exposure_s", "pixel_scale_nm",
        "magnification_kx", "date", "path", "byte_size", "sha256", "format", "width", "height",
        "pixel_type", "ingested_at", "facts",
    ]
    public static let databaseSelection: [any SQLSelectable & Sendable] = columnNames.map { Column($0) }

    /// Reads by position: rows must come from a selection of `columnNames` in order (GRDB's
    /// record requests use `databaseSelection`, which is exactly that).
    public init(row: Row) {
        id = row[0]
        session = row[1]
        fileName = row[2]
        metadataSource = row[3]
        metadataRow = row[4]
        material = row[5]
        particleSizeNm = row[6]
        shape = row[7]
        support = row[8]
        instrument = row[9]
        dose = row[10]
        doseRate = row[11]
        exposureSeconds = row[12]
        pixelScaleNm = row[13]
        magnificationKx = row[14]
        date = row[15]
        path = row[16]
        byteSize = row[17]
        sha256 = row[18]
        format = row[19]
        width = row[20]
        height = row[21]
        pixelType = row[22]
        ingestedAt = row[23]
        facts = row[24]
    }

    /// Reads the current row of a stepped statement that selects `columnNames` in order,
    /// straight through SQLite's C API: the same values and conversions as `init(row:)`
    /// (GRDB's fast path makes the same sqlite3_column_* calls), without GRDB's per-column
    /// dispatch, which made a 10,000-frame query about 10% slower (bench-catalog).
    init(sqliteStatement statement: SQLiteStatement) {
        func text(_ index: Int32) -> String? {
            guard sqlite3_column_type(statement, index) != SQLITE_NULL,
                  let bytes = sqlite3_column_text(statement, index) else { return nil }
            // The byte count spares the strlen of String(cString:).
            return String(decoding: UnsafeBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(statement, index))),
                          as: UTF8.self)
        }
        func real(_ index: Int32) -> Double? {
            sqlite3_column_type(statement, index) == SQLITE_NULL ? nil : sqlite3_column_double(statement, index)
        }
        func integer(_ index: Int32) -> Int64? {
            sqlite3_column_type(statement, index) == SQLITE_NULL ? nil : sqlite3_column_int64(statement, index)
        }
        id = integer(0)
        session = text(1) ?? ""
        fileName = text(2) ?? ""
        metadataSource = text(3)
        metadataRow = integer(4).map { Int($0) }
        material = text(5)
        particleSizeNm = real(6)
        shape = text(7)
        support = text(8)
        instrument = text(9)
        dose = real(10)
        doseRate = real(11)
        exposureSeconds = real(12)
        pixelScaleNm = real(13)
        magnificationKx = real(14)
        date = text(15)
        path = text(16)
        byteSize = integer(17)
        sha256 = text(18)
        format = text(19)
        width = integer(20).map { Int($0) }
        height = integer(21).map { Int($0) }
        pixelType = text(22)
        ingestedAt = text(23)
        facts = text(24)
    }

    public func encode(to container: inout PersistenceContainer) {
        container["id"] = id
        container["session"] = session
        container["file_name"] = fileName
        container["metadata_source"] = metadataSource
        container["metadata_row"] = metadataRow
        container["material"] = material
        container["particle_size_nm"] = particleSizeNm
        container["shape"] = shape
        container["support"] = support
        container["instrument"] = instrument
        container["dose"] = dose
        container["dose_rate"] = doseRate
        container["exposure_s"] = exposureSeconds
        container["pixel_scale_nm"] = pixelScaleNm
        container["magnification_kx"] = magnificationKx
        container["date"] = date
        container["path"] = path
        container["byte_size"] = byteSize
        container["sha256"] = sha256
        container["format"] = format
        container["width"] = width
        container["height"] = height
        container["pixel_type"] = pixelType
        container["ingested_at"] = ingestedAt
        container["facts"] = facts
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    /// The values of `columnNames` without `id`, in order (for prepared bulk inserts).
    public var argumentsWithoutId: StatementArguments {
        let values: [(any DatabaseValueConvertible)?] = [
            session, fileName, metadataSource, metadataRow, material, particleSizeNm, shape, support,
            instrument, dose, doseRate, exposureSeconds, pixelScaleNm, magnificationKx, date, path, byteSize,
            sha256, format, width, height, pixelType, ingestedAt, facts,
        ]
        return StatementArguments(values)
    }

    /// Whether the frame's file has been ingested (hashed and read).
    public var isIngested: Bool { sha256 != nil }
}

/// A label mask for a frame (PNG, 8-bit, any non-zero pixel is particle), from a local PNG or
/// a Labelbox export. One label per (frame, source).
public struct LabelRecord: Codable, Equatable, Sendable, FetchableRecord, MutablePersistableRecord, RowIdentified {
    public static let databaseTableName = "labels"
    public var id: Int64?
    public var frameId: Int64
    /// Where it came from: `png`, `labelbox`, `synthetic`...
    public var source: String
    public var path: String?
    public var sha256: String?
    public var format: String?
    public var width: Int?
    public var height: Int?
    public var particlePixels: Int?
    /// Labelbox ids (JSON text), when the label came from an export.
    public var labelbox: String?
    public var createdAt: String?

    public init(id: Int64? = nil, frameId: Int64, source: String, path: String? = nil, sha256: String? = nil,
                format: String? = nil, width: Int? = nil, height: Int? = nil, particlePixels: Int? = nil,
                labelbox: String? = nil, createdAt: String? = nil) {
        self.id = id; self.frameId = frameId; self.source = source; self.path = path; self.sha256 = sha256
        self.format = format; self.width = width; self.height = height; self.particlePixels = particlePixels
        self.labelbox = labelbox; self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, frameId = "frame_id", source, path, sha256, format, width, height
        case particlePixels = "particle_pixels", labelbox, createdAt = "created_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
    public func encode(to container: inout PersistenceContainer) throws {
        container["id"] = id; container["frame_id"] = frameId; container["source"] = source
        container["path"] = path; container["sha256"] = sha256; container["format"] = format
        container["width"] = width; container["height"] = height
        container["particle_pixels"] = particlePixels; container["labelbox"] = labelbox
        if let createdAt { container["created_at"] = createdAt }
    }
}

/// A place frames and labels can be fetched from. `kind`: `nersc`, `dryad` or `http`;
/// `settings` is JSON text (tokens are never stored here).
public struct MirrorRecord: Codable, Equatable, Sendable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "mirrors"
    public var id: Int64?
    public var name: String
    public var kind: String
    public var baseURL: String
    public var settings: String?
    public var createdAt: String?

    public init(id: Int64? = nil, name: String, kind: String, baseURL: String, settings: String? = nil,
                createdAt: String? = nil) {
        self.id = id; self.name = name; self.kind = kind; self.baseURL = baseURL; self.settings = settings
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, kind, baseURL = "base_url", settings, createdAt = "created_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
    public func encode(to container: inout PersistenceContainer) throws {
        container["id"] = id; container["name"] = name; container["kind"] = kind
        container["base_url"] = baseURL; container["settings"] = settings
        if let createdAt { container["created_at"] = createdAt }
    }
}

/// A named dataset recipe: query + preprocessing + patching + split parameters, as JSON text.
public struct RecipeRecord: Codable, Equatable, Sendable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "recipes"
    public var id: Int64?
    public var name: String
    public var definition: String
    public var createdAt: String?

    public init(id: Int64? = nil, name: String, definition: String, createdAt: String? = nil) {
        self.id = id; self.name = name; self.definition = definition; self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey { case id, name, definition, createdAt = "created_at" }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
    public func encode(to container: inout PersistenceContainer) throws {
        container["id"] = id; container["name"] = name; container["definition"] = definition
        if let createdAt { container["created_at"] = createdAt }
    }
}

/// A materialized, immutable dataset version (a folder under `datasets/`).
public struct DatasetVersionRecord: Codable, Equatable, Sendable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "dataset_versions"
    public var id: Int64?
    public var recipeId: Int64?
    /// Content id: hash of recipe + input hashes + format version.
    public var versionId: String
    public var folder: String
    public var frameCount: Int?
    public var patchCount: Int?
    public var manifestSHA256: String?
    public var createdAt: String?

    public init(id: Int64? = nil, recipeId: Int64?, versionId: String, folder: String, frameCount: Int? = nil,
                patchCount: Int? = nil, manifestSHA256: String? = nil, createdAt: String? = nil) {
        self.id = id; self.recipeId = recipeId; self.versionId = versionId; self.folder = folder
        self.frameCount = frameCount; self.patchCount = patchCount; self.manifestSHA256 = manifestSHA256
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, recipeId = "recipe_id", versionId = "version_id", folder, frameCount = "frame_count"
        case patchCount = "patch_count", manifestSHA256 = "manifest_sha256", createdAt = "created_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
    public func encode(to container: inout PersistenceContainer) throws {
        container["id"] = id; container["recipe_id"] = recipeId; container["version_id"] = versionId
        container["folder"] = folder; container["frame_count"] = frameCount
        container["patch_count"] = patchCount; container["manifest_sha256"] = manifestSHA256
        if let createdAt { container["created_at"] = createdAt }
    }
}

/// A trained model (checkpoint + JSON card) for one fold of a dataset version.
public struct ModelRecord: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "models"
    /// The model id (also its folder name under `models/`).
    public var id: String
    /// `dataset_versions.version_id` it was trained on.
    public var datasetVersion: String?
    public var fold: Int?
    public var seed: Int64?
    public var settings: String?
    public var checkpointPath: String?
    public var card: String?
    public var createdAt: String?

    public init(id: String, datasetVersion: String?, fold: Int? = nil, seed: Int64? = nil, settings: String? = nil,
                checkpointPath: String? = nil, card: String? = nil, createdAt: String? = nil) {
        self.id = id; self.datasetVersion = datasetVersion; self.fold = fold; self.seed = seed
        self.settings = settings; self.checkpointPath = checkpointPath; self.card = card
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, datasetVersion = "dataset_version", fold, seed, settings
        case checkpointPath = "checkpoint_path", card, createdAt = "created_at"
    }

    public func encode(to container: inout PersistenceContainer) throws {
        container["id"] = id; container["dataset_version"] = datasetVersion; container["fold"] = fold
        container["seed"] = seed; container["settings"] = settings
        container["checkpoint_path"] = checkpointPath; container["card"] = card
        if let createdAt { container["created_at"] = createdAt }
    }
}

/// Metrics of one model evaluated on (a scope of) one dataset version. `scope`: `all`,
/// `fold:2`, ... One row per (model, dataset version, scope).
public struct ResultRecord: Codable, Equatable, Sendable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "results"
    public var id: Int64?
    public var modelId: String
    public var datasetVersion: String
    public var scope: String
    public var hardDice: Double?
    public var softDice: Double?
    public var loss: Double?
    public var fpRate: Double?
    public var fnRate: Double?
    /// Per-patch metrics, JSON text.
    public var perPatch: String?
    public var createdAt: String?

    public init(id: Int64? = nil, modelId: String, datasetVersion: String, scope: String, hardDice: Double? = nil,
                softDice: Double? = nil, loss: Double? = nil, fpRate: Double? = nil, fnRate: Double? = nil,
                perPatch: String? = nil, createdAt: String? = nil) {
        self.id = id; self.modelId = modelId; self.datasetVersion = datasetVersion; self.scope = scope
        self.hardDice = hardDice; self.softDice = softDice; self.loss = loss; self.fpRate = fpRate
        self.fnRate = fnRate; self.perPatch = perPatch; self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, modelId = "model_id", datasetVersion = "dataset_version", scope
        case hardDice = "hard_dice", softDice = "soft_dice", loss, fpRate = "fp_rate", fnRate = "fn_rate"
        case perPatch = "per_patch", createdAt = "created_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
    public func encode(to container: inout PersistenceContainer) throws {
        container["id"] = id; container["model_id"] = modelId; container["dataset_version"] = datasetVersion
        container["scope"] = scope; container["hard_dice"] = hardDice; container["soft_dice"] = softDice
        container["loss"] = loss; container["fp_rate"] = fpRate; container["fn_rate"] = fnRate
        container["per_patch"] = perPatch
        if let createdAt { container["created_at"] = createdAt }
    }
}

/// A record whose row id is known after it is stored (nil before).
public protocol RowIdentified {
    var id: Int64? { get set }
}
