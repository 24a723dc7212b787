import Foundation
import GRDB
import Micrograph
import Preprocessing

/// A named dataset definition: a frame query plus every preprocessing, patching and split
/// parameter of the study's preprocessing. Defaults are the study's. Stored in the catalog's `recipes` table
/// (column `definition`, canonical JSON) and shipped as files in `catalog/recipes/NAME.json`
/// with the same keys:
///
///     {"name": "...", "description": "...", "query": "material = \"Ag\" and ...",
///      "rescale": "standardize", "flatField": true, "flatFieldIterations": 2,
///      "xrayThreshold": 1500, "patch": 512, "stride": 512, "minParticlePixels": 400,
///      "seed": 34522, "folds": 5, "groupFoldsBy": "none"}
///
/// `xrayThreshold` null turns x-ray removal off; `groupFoldsBy` is none (the study's
/// contiguous folds), frame or session.
public struct DatasetRecipe: Codable, Equatable, Sendable {
    public var name: String
    public var description: String?
    public var query: String
    public var rescale: Rescaling = .standardize
    public var flatField: Bool = true
    public var flatFieldIterations: Int = 2
    public var xrayThreshold: Double? = 1500
    public var patch: Int = 512
    public var stride: Int = 512
    public var minParticlePixels: Int = 400
    public var seed: Int = 34522
    public var folds: Int = 5
    public var groupFoldsBy: FoldGrouping = .none

    public init(name: String, query: String, description: String? = nil) {
        self.name = name; self.query = query; self.description = description
    }

    enum CodingKeys: String, CodingKey {
        case name, description, query, rescale, flatField, flatFieldIterations, xrayThreshold, patch, stride
        case minParticlePixels, seed, folds, groupFoldsBy
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        query = try c.decode(String.self, forKey: .query)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        rescale = try c.decodeIfPresent(Rescaling.self, forKey: .rescale) ?? .standardize
        flatField = try c.decodeIfPresent(Bool.self, forKey: .flatField) ?? true
        flatFieldIterations = try c.decodeIfPresent(Int.self, forKey: .flatFieldIterations) ?? 2
        if c.contains(.xrayThreshold) { xrayThreshold = try c.decodeIfPresent(Double.self, forKey: .xrayThreshold) }
        patch = try c.decodeIfPresent(Int.self, forKey: .patch) ?? 512
        stride = try c.decodeIfPresent(Int.self, forKey: .stride) ?? patch
        minParticlePixels = try c.decodeIfPresent(Int.self, forKey: .minParticlePixels) ?? 400
        seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? 34522
        folds = try c.decodeIfPresent(Int.self, forKey: .folds) ?? 5
        groupFoldsBy = try c.decodeIfPresent(FoldGrouping.self, forKey: .groupFoldsBy) ?? .none
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(description, forKey: .description)
        try c.encode(query, forKey: .query)
        try c.encode(rescale, forKey: .rescale)
        try c.encode(flatField, forKey: .flatField)
        try c.encode(flatFieldIterations, forKey: .flatFieldIterations)
        if let xrayThreshold { try c.encode(xrayThreshold, forKey: .xrayThreshold) } else { try c.encodeNil(forKey: .xrayThreshold) }
        try c.encode(patch, forKey: .patch)
        try c.encode(stride, forKey: .stride)
        try c.encode(minParticlePixels, forKey: .minParticlePixels)
        try c.encode(seed, forKey: .seed)
        try c.encode(folds, forKey: .folds)
        try c.encode(groupFoldsBy, forKey: .groupFoldsBy)
    }

    /// The per-frame preprocessing this recipe asks for.
    public var framePreprocessing: FramePreprocessing {
        FramePreprocessing(xrayThreshold: xrayThreshold, flatField: flatField, flatFieldIterations: flatFieldIterations,
                           rescaling: rescale)
    }

    /// Checks every parameter and parses the query against `fields` (a catalog's registry
    /// when the query may name registered fields), returning it parsed (so a build parses it
    /// once).
    /// - Throws: `DatasetError` naming the parameter and what is wrong.
    @discardableResult
    public func validate(fields: FieldRegistry = .builtIn) throws -> FrameQuery {
        func fail(_ message: String) -> DatasetError { DatasetError(dataset: name, message) }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "_-.".contains($0) }), !name.hasPrefix(".") else {
            throw fail("the name may hold only letters, digits, '_', '-' and '.' (and not start with '.')")
        }
        let parsed: FrameQuery
        do { parsed = try FrameQuery.parse(query, fields: fields) } catch { throw fail("query: \(error)") }
        guard patch > 0, patch % 16 == 0 else { throw fail("patch \(patch) must be a positive multiple of 16 (the U-Net needs it)") }
        guard stride > 0 else { throw fail("stride must be positive") }
        guard minParticlePixels >= 0 else { throw fail("min-particle-pixels must be >= 0") }
        guard folds >= 2 else { throw fail("folds must be at least 2") }
        guard (0...Int(UInt32.max)).contains(seed) else { throw fail("seed must be in 0...4294967295 (NumPy's legacy seed range)") }
        guard flatFieldIterations >= 1 else { throw fail("flat-field iterations must be >= 1") }
        if let xrayThreshold, !(xrayThreshold > 0) { throw fail("x-ray threshold must be positive") }
        return parsed
    }

    /// Canonical JSON: what the catalog stores and what version ids hash.
    public func canonicalText() throws -> String { String(decoding: try CanonicalJSON.pretty(self), as: UTF8.self) }

    /// Reads a recipe file.
    /// - Throws: `DatasetError` naming the file when it is not a valid recipe.
    public static func read(from url: URL) throws -> DatasetRecipe {
        do {
            let recipe = try JSONDecoder().decode(DatasetRecipe.self, from: Data(contentsOf: url))
            try recipe.validate()
            return recipe
        } catch let error as DatasetError {
            throw DatasetError("\(url.path): \(error.description)")
        } catch {
            throw DatasetError("\(url.path): not a recipe (\(error))")
        }
    }
}

/// An error about recipes and dataset versions that a user can act on: which dataset, what is
/// wrong, and what exists instead when that helps choose.
public struct DatasetError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The recipe or version reference the problem concerns, when there is one.
    public var dataset: String?
    public var reason: String
    /// What exists instead (recipe names, version ids).
    public var known: [String]

    public init(dataset: String? = nil, _ reason: String, known: [String] = []) {
        self.dataset = dataset
        self.reason = reason
        self.known = known
    }

    public var description: String {
        (dataset.map { "dataset \($0): " } ?? "") + reason + (known.isEmpty ? "" : " (known: \(known.joined(separator: ", ")))")
    }
}
/// Recipes in the catalog's `recipes` table.
public enum RecipeStore {
    /// Stores (or replaces, keeping its id) a recipe. One transaction.
    @discardableResult
    public static func save(_ recipe: DatasetRecipe, in store: CatalogStore) throws -> Int64 {
        try recipe.validate(fields: store.fieldRegistry())
        let definition = try recipe.canonicalText()
        return try store.dbQueue.write { db in try save(definition: definition, name: recipe.name, in: db) }
    }

    static func save(definition: String, name: String, in db: Database) throws -> Int64 {
        if let id = try Int64.fetchOne(db, sql: "SELECT id FROM recipes WHERE name = ?", arguments: [name]) {
            try db.execute(sql: "UPDATE recipes SET definition = ? WHERE id = ?", arguments: [definition, id])
            return id
        }
        try db.execute(sql: "INSERT INTO recipes (name, definition) VALUES (?, ?)", arguments: [name, definition])
        return db.lastInsertedRowID
    }

    public static func recipe(named name: String, in store: CatalogStore) throws -> DatasetRecipe? {
        guard let text = try store.dbQueue.read({ db in
            try String.fetchOne(db, sql: "SELECT definition FROM recipes WHERE name = ?", arguments: [name])
        }) else { return nil }
        return try JSONDecoder().decode(DatasetRecipe.self, from: Data(text.utf8))
    }

    public static func all(in store: CatalogStore) throws -> [DatasetRecipe] {
        try store.dbQueue.read { db in
            try String.fetchAll(db, sql: "SELECT definition FROM recipes ORDER BY name")
        }.map { try JSONDecoder().decode(DatasetRecipe.self, from: Data($0.utf8)) }
    }

    /// Loads every `*.json` recipe of a folder (e.g. the project's `catalog/recipes`).
    public static func importFolder(_ folder: URL, into store: CatalogStore) throws -> [DatasetRecipe] {
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
        let recipes = try files.map(DatasetRecipe.read(from:))
        try store.dbQueue.write { db in
            for recipe in recipes {
                _ = try save(definition: try recipe.canonicalText(), name: recipe.name, in: db)
            }
        }
        return recipes
    }
}
