import ArgumentParser
import Catalog
import Experiments
import Foundation

/// `hrtem matrix --where Q --split-by FIELD[~TOL]`: the datasets of a matrix made from the
/// groups of one field's values instead of named on the command line.
struct MatrixSplitOptions: ParsableArguments {
    @Option(name: .customLong("where"), help: "With --split-by: the frames to split.")
    var filter: String?
    @Option(name: .customLong("split-by"), help: "Make one dataset per group of this field's values, e.g. defocus~5 (values within 5 grouped).")
    var splitBy: String?
    @Option(help: "With --split-by: the datasets' patch size.") var patch: Int = 512
    @Option(name: .customLong("min-particle-pixels"), help: "With --split-by: keep patches with more particle pixels than this.")
    var minParticlePixels: Int = 400

    var isSplit: Bool { splitBy != nil }

    func check(datasets: String?) throws {
        if (datasets == nil) == (splitBy == nil) { throw ValidationError("give either --datasets or --split-by (with --where)") }
        if splitBy != nil && filter == nil { throw ValidationError("--split-by needs --where (the frames to split)") }
        if splitBy == nil && filter != nil { throw ValidationError("--where goes with --split-by") }
    }

    /// Splits, stores and builds one dataset recipe per group and returns their names, printing
    /// the groups; a group that builds no dataset (no labeled frame) stops with its error.
    func datasets(folds: Int, data: DataFolder) throws -> (names: [String], split: FieldSplit) {
        let store = try CatalogStore(folder: data)
        let registry = try store.fieldRegistry()
        let (field, tolerance) = try wrapValidation { try FieldSplit.parseSpec(splitBy!, registry: registry) }
        let query = try FrameQuery.parse(filter!, fields: registry)
        let split = try FieldSplit.compute(field: field, tolerance: tolerance, where: query, in: store)
        guard split.groups.count >= 1 else { throw ValidationError("--split-by \(field.rawValue): no selected frame has a value") }
        print(split.summary)
        var template = DatasetRecipe(name: "split", query: filter!)
        template.patch = patch
        template.stride = patch
        template.minParticlePixels = minParticlePixels
        template.folds = max(2, folds)
        var names: [String] = []
        for recipe in split.recipes(like: template) {
            try RecipeStore.save(recipe, in: store)
            let built = try DatasetMaterializer.build(recipe, store: store, dataFolder: data)
            MatrixCLI.printError("dataset \(recipe.name): \(built.version.info.versionId)")
            names.append(recipe.name)
        }
        return (names, split)
    }

    private func wrapValidation<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as FieldError { throw ValidationError(error.description) }
    }
}
