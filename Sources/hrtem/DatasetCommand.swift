import ArgumentParser
import Catalog
import Foundation
import Micrograph
import Preprocessing

extension Rescaling: ExpressibleByArgument {}
extension FoldGrouping: ExpressibleByArgument {}

/// Counts above the frame's median that mark an x-ray hit, or `off`.
struct XRayThreshold: ExpressibleByArgument {
    var counts: Double?

    init?(argument: String) {
        if argument == "off" { counts = nil; return }
        guard let value = Double(argument), value > 0, value.isFinite else { return nil }
        counts = value
    }

    init(counts: Double?) { self.counts = counts }

    var defaultValueDescription: String { counts.map { String(format: "%g", $0) } ?? "off" }
}

struct DatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset",
        abstract: "Define, build, inspect and export reproducible dataset versions.",
        discussion: """
        A recipe is a query plus every preprocessing, patching and split parameter (defaults are
        the study's). `build` turns it into an immutable version folder under
        <data>/datasets/NAME/<version id>/ whose id hashes the resolved recipe and its inputs.

        Examples:
          hrtem dataset create Ag5nm423e --where 'material = "Ag" and size = 5 and dose ~ 423 +- 20 and pixel_scale = 0.02'
          hrtem dataset import catalog/recipes
          hrtem dataset build Ag5nm423e
          hrtem dataset list
          hrtem dataset show Ag5nm423e@3f2a
          hrtem dataset verify Ag5nm423e
          hrtem dataset export Ag5nm423e --to out/
          hrtem dataset import-h5 Au2p2 --images Au_2p2nm_Images.h5 --labels Au_2p2nm_Labels.h5
        """,
        subcommands: [DatasetCreateCommand.self, DatasetImportCommand.self, DatasetBuildCommand.self,
                      DatasetListCommand.self, DatasetShowCommand.self, DatasetVerifyCommand.self,
                      DatasetExportCommand.self, DatasetImportH5Command.self])
}

struct DatasetCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Store a dataset recipe in the catalog (replacing one of the same name).")

    @OptionGroup var data: DataOptions
    @Argument(help: "Recipe name (letters, digits, _ - .).") var name: String
    @Option(name: .customLong("where"), help: "Frame query, e.g. 'material = \"Au\" and size = 5'.") var query: String
    @Option(help: "Rescaling: standardize, normalize or histogram.") var rescale: Rescaling = .standardize
    @Flag(name: .customLong("flat-field"), inversion: .prefixedNo, help: "Flat-field correction.") var flatField = true
    @Option(name: .customLong("flat-field-iterations"), help: "IRLS iterations of the flat-field fit.") var flatFieldIterations = 2
    @Option(name: .customLong("xray-threshold"), help: "Counts above the median that mark an x-ray hit; 'off' disables x-ray removal.")
    var xrayThreshold = XRayThreshold(counts: 1500)
    @Option(help: "Patch size in pixels (a multiple of 16).") var patch = 512
    @Option(help: "Tiling stride in pixels (default: the patch size).") var stride: Int?
    @Option(name: .customLong("min-particle-pixels"), help: "Keep a patch only with more particle pixels than this.") var minParticlePixels = 400
    @Option(help: "Image-level shuffle seed (NumPy legacy generator).") var seed = 34522
    @Option(help: "Number of cross-validation folds.") var folds = 5
    @Option(name: .customLong("group-folds-by"), help: "none (the study's contiguous folds), frame or session.")
    var groupFoldsBy = FoldGrouping.none
    @Option(help: "A line describing the dataset.") var description: String?

    var recipe: DatasetRecipe {
        var recipe = DatasetRecipe(name: name, query: query, description: description)
        recipe.rescale = rescale
        recipe.flatField = flatField
        recipe.flatFieldIterations = flatFieldIterations
        recipe.xrayThreshold = xrayThreshold.counts
        recipe.patch = patch
        recipe.stride = stride ?? patch
        recipe.minParticlePixels = minParticlePixels
        recipe.seed = seed
        recipe.folds = folds
        recipe.groupFoldsBy = groupFoldsBy
        return recipe
    }

    func validate() throws {
        // The query may name fields the catalog registered; without a catalog yet, the built-in ones.
        let catalog = data.folder.catalogFile
        let fields = FileManager.default.fileExists(atPath: catalog.path)
            ? try CatalogStore(folder: data.folder).fieldRegistry() : .builtIn
        do { try recipe.validate(fields: fields) } catch let error as DatasetError { throw ValidationError(error.description) }
    }

    func run() throws {
        let recipe = self.recipe
        let store = try CatalogStore(folder: data.folder)
        try RecipeStore.save(recipe, in: store)
        let selected = try store.count(matching: query)
        print("recipe \(name) stored (\(selected) frames selected now); build it with `hrtem dataset build \(name)`")
    }
}

struct DatasetImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Store recipe files (a folder of *.json, e.g. catalog/recipes, or single files).")

    @OptionGroup var data: DataOptions
    @Argument(help: "Recipe files or folders.") var paths: [String]

    func run() throws {
        let store = try CatalogStore(folder: data.folder)
        for path in paths {
            var directory: ObjCBool = false
            let url = URL(fileURLWithPath: path)
            if FileManager.default.fileExists(atPath: path, isDirectory: &directory), directory.boolValue {
                let recipes = try RecipeStore.importFolder(url, into: store)
                print("\(path): \(recipes.count) recipes stored (\(recipes.map(\.name).joined(separator: ", ")))")
            } else {
                let recipe = try DatasetRecipe.read(from: url)
                try RecipeStore.save(recipe, in: store)
                print("\(path): recipe \(recipe.name) stored")
            }
        }
    }
}

struct DatasetBuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build", abstract: "Materialize a recipe into an immutable, registered dataset version.")

    @OptionGroup var data: DataOptions
    @Argument(help: "Recipe name.") var name: String
    @Option(help: "Frames preprocessed at once (memory: about 150 MB per 4096^2 frame).") var jobs = min(4, ProcessInfo.processInfo.activeProcessorCount)

    func run() throws {
        let store = try CatalogStore(folder: data.folder)
        guard let recipe = try RecipeStore.recipe(named: name, in: store) else {
            let known = try RecipeStore.all(in: store).map(\.name)
            throw DatasetError(dataset: name, known.isEmpty ? "no such recipe; use `hrtem dataset create` or `hrtem dataset import catalog/recipes`"
                                                            : "no such recipe", known: known)
        }
        let result = try DatasetMaterializer.build(recipe, store: store, dataFolder: data.folder, jobs: max(1, jobs)) { line in
            print(line)
        }
        print("\(result.version.name)@\(result.version.versionId)")
    }
}

struct DatasetListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Recipes and their built versions.")
    @OptionGroup var data: DataOptions

    func run() throws {
        let store = try CatalogStore(folder: data.folder)
        let versions = try DatasetRegistry.versions(in: store)
        for recipe in try RecipeStore.all(in: store) {
            let mine = versions.filter { $0.name == recipe.name }
            print("\(recipe.name)  \(mine.isEmpty ? "(not built)" : "\(mine.count) version\(mine.count == 1 ? "" : "s")")  \(recipe.query)")
            for v in mine {
                print("  @\(v.versionId.prefix(12))  \(v.frameCount) frames  \(v.patchCount) patches  \(v.createdAt)")
            }
        }
    }
}

struct DatasetShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "A recipe and, when built, its version (NAME or NAME@VERSION).")
    @OptionGroup var data: DataOptions
    @Argument(help: "NAME or NAME@VERSION (a version-id prefix).") var spec: String

    func run() throws {
        let store = try CatalogStore(folder: data.folder)
        let reference = try DatasetReference(parsing: spec)
        guard let recipe = try RecipeStore.recipe(named: reference.name, in: store) else {
            throw DatasetError(dataset: reference.name, "no such recipe", known: try RecipeStore.all(in: store).map(\.name))
        }
        print(try recipe.canonicalText())
        guard let version = try DatasetRegistry.registered(reference, in: store, dataFolder: data.folder) else {
            print("not built yet: hrtem dataset build \(reference.name)")
            return
        }
        let plan = try version.folds()
        print("version \(version.versionId)")
        print("folder  \(version.folder.path)")
        print("frames \(version.info.frameCount), patches \(version.patchCount) of \(version.patchSize) x \(version.patchSize), folds \(plan.k) (\(plan.rule.rawValue))")
        for fold in plan.folds {
            print("  fold \(fold.fold) seed \(fold.seed): train \(fold.train.count), validation \(fold.validation.count), test \(fold.test.count)")
        }
    }
}

struct DatasetVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "Re-hash a version's files against its MANIFEST.")
    @OptionGroup var data: DataOptions
    @Argument(help: "NAME or NAME@VERSION.") var spec: String

    func run() throws {
        let version = try DatasetRegistry.locate(spec, in: data.folder)
        let problems = try version.verify()
        if problems.isEmpty {
            print("\(version.name)@\(version.versionId.prefix(12)): intact (\(VersionFolder.dataFiles.count) files match MANIFEST)")
        } else {
            for problem in problems { print("\(version.folder.path)/\(problem)") }
            throw ExitCode(1)
        }
    }
}

extension DatasetExport.Format: ExpressibleByArgument {}

struct DatasetExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Copy a version's files to a folder: npy as stored, or hdf5 in the study's layout.",
        discussion: "hdf5 writes <Name>_Images.h5 (key images, float64) and <Name>_Labels.h5 (key labels, float32 0/1), as the study's Dryad files.")
    @OptionGroup var data: DataOptions
    @Argument(help: "NAME or NAME@VERSION.") var spec: String
    @Option(help: "Destination folder.") var to: String
    @Option(help: "npy or hdf5.") var format: DatasetExport.Format = .npy

    func run() throws {
        let version = try DatasetRegistry.locate(spec, in: data.folder)
        let written = try DatasetExport.export(version, to: URL(fileURLWithPath: to), format: format)
        print("exported \(version.name)@\(version.versionId.prefix(12)) to \(to): \(written.map(\.lastPathComponent).joined(separator: ", "))")
    }
}

struct DatasetImportH5Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-h5",
        abstract: "Make a dataset version from an image/label HDF5 pair in the study's layout.",
        discussion: """
        The pair is what the study published on Dryad and what `dataset export --format hdf5`
        writes: images (N, P, P) float64 (stored as float32) and labels (N, P, P) float32 0/1
        (stored as uint8). Folds are the study's (contiguous blocks, --folds of them). The
        version's recipe records both files' SHA-256; importing the same pair again reuses it.
        """)
    @OptionGroup var data: DataOptions
    @Argument(help: "Dataset name (letters, digits, _ - .).") var name: String
    @Option(help: "The images file (<Name>_Images.h5).") var images: String
    @Option(help: "The labels file (<Name>_Labels.h5).") var labels: String
    @Option(help: "Folds (the study: 5).") var folds = 5
    @Option(name: .customLong("images-key"), help: "Dataset name inside the images file.") var imagesKey = "images"
    @Option(name: .customLong("labels-key"), help: "Dataset name inside the labels file.") var labelsKey = "labels"

    func run() throws {
        let store = try CatalogStore(folder: data.folder)
        let result = try DatasetH5Import.importPair(name: name, images: URL(fileURLWithPath: images), labels: URL(fileURLWithPath: labels),
                                                    folds: folds, imagesKey: imagesKey, labelsKey: labelsKey,
                                                    store: store, dataFolder: data.folder) { print($0) }
        _ = result
    }
}
