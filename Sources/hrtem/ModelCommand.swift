import ArgumentParser
import Catalog
import Experiments
import Foundation
import Micrograph
import Mirrors
import Segmentation

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Import trained models published as PyTorch checkpoints, fetch the study's, list the catalog's.",
        discussion: """
        `import` reads PyTorch checkpoint files natively (torch.save of a whole module, like the
        study's *_model.h5 files, or of a state_dict) without running any code from them: a
        restricted reader rebuilds tensors and refuses every other Python global. The network's
        shape is read from the tensors; each model becomes <data>/models/<id>/ (model.safetensors
        + model.json, usable by `hrtem evaluate` and `hrtem segment`) and a catalog entry recording
        what it was trained on.

        Examples:
          hrtem model import ../models/*_model.h5 --details model_details.csv
          hrtem model fetch study --details model_details.csv
          hrtem model list
        """,
        subcommands: [ModelImportCommand.self, ModelFetchCommand.self, ModelListCommand.self])
}

struct ModelImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Import PyTorch checkpoint files as hrtem models.")

    @OptionGroup var data: DataOptions
    @Argument(help: "Checkpoint files (torch.save zip archives).") var files: [String]
    @Option(help: "The study's model_details.csv: dataset, material, size, pixel scale, dose and fold of each model.")
    var details: String?

    func run() throws {
        let folder = data.folder
        let catalog = try CatalogStore(folder: folder)
        let table = try details.map { try StudyModelDetails.read(from: URL(fileURLWithPath: $0)) } ?? [:]
        _ = try ModelImporter.importModels(files: files.map { URL(fileURLWithPath: $0) }, details: table,
                                           folder: folder, catalog: catalog) { print(describe($0)) }
    }
}

struct ModelFetchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Download a mirror's pinned model files (SHA-256 verified) and import them.",
        discussion: """
        SOURCE `study` is the built-in `study-models` mirror: the study's 50 fold models, each
        pinned by its SHA-256 (HRTEM_MIRROR_STUDY_MODELS_URL replaces its base URL). Any other
        mirror name whose definition lists pinned files works too.
        """)

    @OptionGroup var data: DataOptions
    @Argument(help: "`study`, or a mirror name.") var source: String
    @Option(help: "The study's model_details.csv (see `hrtem model import`).") var details: String?
    @OptionGroup var transfer: TransferOptions

    func run() throws {
        let folder = data.folder
        let catalog = try CatalogStore(folder: folder)
        let table = try details.map { try StudyModelDetails.read(from: URL(fileURLWithPath: $0)) } ?? [:]
        let mirror = source == "study" ? MirrorDefinition.studyModels.name : source
        let (models, downloaded) = try ModelImporter.fetchAndImport(mirror: mirror, details: table, folder: folder,
                                                                    catalog: catalog, downloader: transfer.downloader(for: folder))
        for model in models { print(describe(model)) }
        FileHandle.standardError.write(Data("fetched \(downloaded) file\(downloaded == 1 ? "" : "s") from \(mirror), imported \(models.count) model\(models.count == 1 ? "" : "s")\n".utf8))
    }
}

struct ModelListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The catalog's models: trained here and imported.")

    @OptionGroup var data: DataOptions
    @Flag(help: "Print one JSON object per model instead of a table.") var json = false

    func run() throws {
        let catalog = try CatalogStore(folder: data.folder)
        let models = try catalog.models()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for model in models { print(String(decoding: try encoder.encode(model), as: UTF8.self)) }
            return
        }
        let rows = models.map { model -> [String] in
            let provenance = model.importedProvenance
            let trainedOn = model.datasetVersion ?? provenance?.dataset.map { "study:" + $0 } ?? provenance?.sourceFile ?? ""
            return [model.id, trainedOn, provenance?.material ?? "", provenance?.sizeNM.map { formatNumber($0) } ?? "",
                    provenance?.pixelScaleNM.map { formatNumber($0) } ?? "", provenance?.dose.map { formatNumber($0) } ?? "",
                    model.fold.map(String.init) ?? "", model.seed.map(String.init) ?? "", provenance == nil ? trainedOrigin(model) : "imported"]
        }
        print(TextTable.render(header: ["id", "trained on", "material", "size nm", "nm/px", "dose", "fold", "seed", "origin"],
                               rows: rows), terminator: "")
        print("\(models.count) model\(models.count == 1 ? "" : "s")")
    }
}

/// "trained", or "trained, COLLAPSED" when the card the catalog holds says the model collapsed.
private func trainedOrigin(_ model: ModelRecord) -> String {
    model.storedCard?.collapse == nil ? "trained" : "trained, COLLAPSED"
}

private func formatNumber(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
}

private func describe(_ model: ImportedModel) -> String {
    let p = model.provenance
    let arch = model.architecture
    var text = "imported \(model.id): \(p.sourceClass), widths \(arch.widths.map(String.init).joined(separator: "-")) bottleneck \(arch.bottleneckWidth), \(arch.classes) classes, \(model.parameterCount) parameters"
    if let dataset = p.dataset { text += ", trained on \(dataset)" }
    if let fold = p.fold { text += ", fold \(fold)" }
    if let seed = p.seed { text += ", seed \(seed)" }
    return text + " -> \(model.folder.path)"
}
