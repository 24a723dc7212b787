import ArgumentParser
import Catalog
import Experiments
import Foundation
import Micrograph
import Preprocessing

/// `matrix --compare-folds study,frame,session`: the same datasets built under each fold rule, a
/// matrix for each, and the change of the diagonal (a dataset's own test-fold score).
struct FoldComparisonOptions: ParsableArguments {
    @Option(name: .customLong("compare-folds"),
            help: "Build each --datasets recipe under these fold rules (comma separated: study, frame, session; the first is the reference), run the matrix for each into <out>/<rule>, and report the diagonal's change in <out>/fold-comparison.csv.")
    var compareFolds: String?

    static func grouping(_ name: String) -> FoldGrouping? {
        switch name {
        case "study": FoldGrouping.none
        case "frame": FoldGrouping.frame
        case "session": FoldGrouping.session
        default: nil
        }
    }

    func rules() throws -> [String]? {
        guard let compareFolds else { return nil }
        let names = compareFolds.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for name in names where Self.grouping(name) == nil {
            throw ValidationError("--compare-folds: '\(name)' is not a fold rule; expected study, frame or session")
        }
        guard names.count >= 2, Set(names).count == names.count else {
            throw ValidationError("--compare-folds needs two or more different rules, got '\(compareFolds)'")
        }
        return names
    }

    /// Builds, runs and compares; the datasets must be recipe names of the catalog.
    func run(rules: [String], datasets: String, training: TrainingOptions, foldModels: FoldModelOptions,
             variants: [TrainingVariant], execution: ExperimentRunOptions, data: DataFolder) throws {
        guard execution.emitSlurm == nil else { throw ValidationError("--compare-folds runs here; it does not take --emit-slurm") }
        let store = try CatalogStore(folder: data)
        let names = try MatrixCLI.splitList(datasets, what: "--datasets")
        let out = MatrixCLI.absoluteURL(execution.out ?? data.url.appendingPathComponent("experiments/fold-comparison").path)
        var results: [MatrixResults] = []
        for rule in rules {
            var references: [DatasetVersionRef] = []
            for name in names {
                guard var recipe = try RecipeStore.recipe(named: name, in: store) else {
                    throw ValidationError("--compare-folds: '\(name)' is not a recipe of the catalog (create it with `hrtem dataset create`)")
                }
                recipe.groupFoldsBy = Self.grouping(rule)!
                if rule != rules[0] { recipe.name = "\(name)-by-\(rule)" }
                let built = try DatasetMaterializer.build(recipe, store: store, dataFolder: data) { MatrixCLI.printError($0) }
                references.append(try DatasetResolution.describe(built.version, catalog: store))
            }
            let plan = try MatrixPlan(name: "\(execution.name ?? "matrix") [folds by \(rule)]", trainOn: references, testOn: references,
                                      folds: foldModels.folds, variants: variants, executor: execution.executor,
                                      dihedral: training.dihedral, commandLine: MatrixCLI.reproducibleCommandLine())
            var options = execution
            options.out = out.appendingPathComponent(rule).path
            results.append(try MatrixCLI.runLocally(plan, options: options, data: data))
        }
        let comparison = FoldComparison(rules: rules, datasets: names, results: results)
        try writeFileAtomically(Data(comparison.csv.utf8), to: out.appendingPathComponent("fold-comparison.csv"))
        print("diagonal by fold rule (change against \(rules[0])):")
        print(comparison.textTable, terminator: "")
        print("comparison: \(out.appendingPathComponent("fold-comparison.csv").path)")
    }
}
