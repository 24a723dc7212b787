import Catalog
import Foundation
import Micrograph
import Mirrors
import Segmentation
import TorchArchive

/// What an imported model was trained on, as its publisher states it (the study's
/// `model_details.csv`, else what the file name says).
public struct ModelProvenance: Codable, Equatable, Sendable {
    /// The imported file's name and the SHA-256 of its bytes.
    public var sourceFile: String
    public var sourceSHA256: String
    /// `__main__.UNet` for a whole pickled module, `state_dict` for a plain one.
    public var sourceClass: String
    /// The study's dataset name (`Au_2p2nm_330kx_423e_Std_UTC_FFCorr_Team05_Images`).
    public var dataset: String?
    public var material: String?
    public var sizeNM: Double?
    public var pixelScaleNM: Double?
    /// Electron dose, e/A^2.
    public var dose: Double?
    public var magnificationKX: Double?
    public var fold: Int?
    public var seed: UInt64?

    enum CodingKeys: String, CodingKey {
        case sourceFile = "source_file", sourceSHA256 = "source_sha256", sourceClass = "source_class"
        case dataset, material, sizeNM = "size_nm", pixelScaleNM = "pixel_scale_nm", dose
        case magnificationKX = "magnification_kx", fold, seed
    }
}

/// One row of the study's `model_details.csv`.
public struct StudyModelDetails: Equatable, Sendable {
    public var modelName: String
    public var fold: Int
    public var dataset: String
    public var sizeNM: Double
    public var material: String
    public var pixelScaleNM: Double
    public var dose: Double

    static let header = ["Model Name", "Fold", "Dataset Trained On", "Np Diameter (nm)", "Np Material",
                         "Pixel Scale (nm)", "Dosage (e/A2)"]

    /// The table, keyed by lower-cased model name (the table spells `Unet_` where files say `UNet_`).
    /// - Throws: `FormatError` naming the line and column of a bad header or value.
    public static func read(from url: URL) throws -> [String: StudyModelDetails] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw FormatError(file: url.path, "cannot read: \(error.localizedDescription)")
        }
        let table = try CSVTable(data: data, file: url.path)
        guard let head = table.records.first else { throw FormatError(file: url.path, line: 1, "empty table, expected a header") }
        let columns = head.fields.map { $0.trimmingCharacters(in: .whitespaces) }
        guard columns == header else {
            throw FormatError(file: url.path, line: head.line, "header is \(columns), expected \(header)")
        }
        var rows: [String: StudyModelDetails] = [:]
        for record in table.records.dropFirst() {
            func number(_ column: Int) throws -> Double {
                let text = record.fields.indices.contains(column) ? record.fields[column].trimmingCharacters(in: .whitespaces) : ""
                guard let value = Double(text), value.isFinite else {
                    throw FormatError(file: url.path, line: record.line, column: column + 1, "\(header[column]) is '\(text)', expected a number")
                }
                return value
            }
            guard record.fields.count == header.count else {
                throw FormatError(file: url.path, line: record.line, "\(record.fields.count) fields, expected \(header.count)")
            }
            let fold = try number(1)
            guard fold >= 0, fold == fold.rounded() else {
                throw FormatError(file: url.path, line: record.line, column: 2, "Fold is \(fold), expected a whole number")
            }
            let row = StudyModelDetails(modelName: record.fields[0], fold: Int(fold), dataset: record.fields[2],
                                        sizeNM: try number(3), material: record.fields[4],
                                        pixelScaleNM: try number(5), dose: try number(6))
            let key = row.modelName.lowercased()
            guard rows[key] == nil else {
                throw FormatError(file: url.path, line: record.line, column: 1, "model \(row.modelName) is listed twice")
            }
            rows[key] = row
        }
        return rows
    }
}

/// The outcome of importing one file.
public struct ImportedModel: Sendable {
    public var id: String
    public var folder: URL
    public var architecture: UNetArchitecture
    public var parameterCount: Int
    public var provenance: ModelProvenance
}

/// Imports trained models published as PyTorch checkpoints into a data folder: each becomes
/// `models/<id>/model.safetensors` + `model.json`, registered in the catalog.
public enum ModelImporter {
    /// Reads `file` (whole-module or state_dict checkpoint), checks that its tensors form a
    /// residual U-Net (architecture from their shapes), saves it and registers it.
    /// `details` (from `StudyModelDetails.read`) supplies what it was trained on; the study's
    /// file-name convention (`UNet_<size>nm<Material><mag>kX<dose>e<support>_fold<F>_seed<S>`)
    /// fills in what the table does not.
    /// - Throws: `FormatError` for a damaged or hostile file, `ModelError` for tensors that are
    ///   not a residual U-Net.
    public static func importModel(file: URL, details: [String: StudyModelDetails] = [:],
                                   folder: DataFolder, catalog: CatalogStore) throws -> ImportedModel {
        var networks = ImportNetworks()
        return try importModel(file: file, name: file.lastPathComponent, path: file.path, details: details,
                               folder: folder, catalog: catalog, networks: &networks)
    }

    /// Imports several files in order, sharing the networks they are loaded into; `each` sees
    /// every model as it is imported. Stops at the first file that fails.
    public static func importModels(files: [URL], details: [String: StudyModelDetails] = [:], folder: DataFolder,
                                    catalog: CatalogStore, each: (ImportedModel) -> Void = { _ in }) throws -> [ImportedModel] {
        var networks = ImportNetworks()
        return try files.map { file in
            let model = try importModel(file: file, name: file.lastPathComponent, path: file.path, details: details,
                                        folder: folder, catalog: catalog, networks: &networks)
            each(model)
            return model
        }
    }

    /// As `importModel(file:...)`, naming the model `name` and the file `path` in errors (a
    /// downloaded file in the content store goes by its name on the mirror).
    public static func importModel(file: URL, name: String, path: String, details: [String: StudyModelDetails] = [:],
                                   folder: DataFolder, catalog: CatalogStore,
                                   networks: inout ImportNetworks) throws -> ImportedModel {
        let bytes: Data
        do { bytes = try Data(contentsOf: file) } catch {
            throw FormatError(file: path, "cannot read: \(error.localizedDescription)")
        }
        let checkpoint = try TorchCheckpoint.read(from: file, reportingAs: path)
        let tensors = stripWrapperPrefix(checkpoint.tensors)
        let architecture = try ResidualUNet.architecture(from: tensors, file: path)
        let network = networks.network(for: architecture, names: Set(tensors.map(\.name)))
        try network.loadState(tensors, file: path)

        var provenance = provenanceFromName(name)
        provenance.sourceSHA256 = sha256Hex(bytes)
        switch checkpoint.kind {
        case .module(let className): provenance.sourceClass = className
        case .stateDict: provenance.sourceClass = "state_dict"
        }
        if let row = details[name.lowercased()] {
            provenance.dataset = row.dataset
            provenance.material = row.material
            provenance.sizeNM = row.sizeNM
            provenance.pixelScaleNM = row.pixelScaleNM
            provenance.dose = row.dose
            provenance.fold = row.fold
        }
        let id = modelID(name)
        let modelFolder = folder.modelsFolder.appendingPathComponent(id)
        try FileManager.default.createDirectory(at: modelFolder, withIntermediateDirectories: true)
        let (card, record) = try importedModelRecords(id: id, folder: modelFolder, architecture: architecture,
                                                      parameterCount: network.parameterCount, provenance: provenance)
        try network.save(to: modelFolder.appendingPathComponent(ModelCard.weightsFileName),
                         metadata: ["source_file": provenance.sourceFile, "source_sha256": provenance.sourceSHA256,
                                    "source_class": provenance.sourceClass])
        try card.write(to: modelFolder)
        try catalog.registerModel(record, datasetFolder: nil)
        return ImportedModel(id: id, folder: modelFolder, architecture: architecture,
                             parameterCount: network.parameterCount, provenance: provenance)
    }

    /// The card and catalog row of an imported model, in the project's model types. The card's
    /// training fields say "not trained here" (0 epochs, no metrics); its dataset version is
    /// `study:<dataset>` (no local version exists); the catalog row keeps the card like a
    /// trained unit's row and the full provenance as its settings.
    public static func importedModelRecords(id: String, folder: URL, architecture: UNetArchitecture, parameterCount: Int,
                                            provenance: ModelProvenance) throws -> (card: ModelCard, record: ModelRecord) {
        let card = ModelCard.imported(architecture: architecture, parameters: parameterCount,
                                      trainedOn: "study:" + (provenance.dataset ?? provenance.sourceFile),
                                      fold: provenance.fold ?? 0, seed: provenance.seed ?? 0)
        let record = ModelRecord(id: id, datasetVersion: nil, fold: provenance.fold,
                                 seed: provenance.seed.map { Int64(bitPattern: $0) },
                                 settings: try CanonicalJSON.compactString(provenance), checkpointPath: folder.path,
                                 card: try CanonicalJSON.compactString(card))
        return (card, record)
    }

    /// A folder-safe id from a file name: the name without its extension, characters other than
    /// letters, digits, `-`, `_` and `.` replaced by `_`.
    public static func modelID(_ fileName: String) -> String {
        let stem = (fileName as NSString).deletingPathExtension
        let safe = String(stem.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-_.".unicodeScalars.contains(scalar))
                ? Character(scalar) : "_"
        })
        let trimmed = safe.drop { $0 == "." }
        return trimmed.isEmpty ? "model" : String(trimmed)
    }

    /// What the study's file names say: `UNet_2p2nmAu330kX423eUTC_fold0_seed962_model.h5`.
    static func provenanceFromName(_ name: String) -> ModelProvenance {
        var provenance = ModelProvenance(sourceFile: name, sourceSHA256: "", sourceClass: "")
        let pattern = #"^[Uu][Nn]et_([0-9p]+)nm([A-Za-z]+?)([0-9]+)kX([0-9]+)e[A-Za-z]*_fold([0-9]+)_seed([0-9]+)"#
        guard let regex = try? NSRegularExpression(pattern: pattern),
              let match = regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) else { return provenance }
        func group(_ index: Int) -> String { String(name[Range(match.range(at: index), in: name)!]) }
        provenance.sizeNM = Double(group(1).replacingOccurrences(of: "p", with: "."))
        provenance.material = group(2)
        provenance.magnificationKX = Double(group(3))
        provenance.dose = Double(group(4))
        provenance.fold = Int(group(5))
        provenance.seed = UInt64(group(6))
        return provenance
    }

    /// `nn.DataParallel` saves every name under `module.`; hrtem's network has no such wrapper.
    static func stripWrapperPrefix(_ tensors: [SafetensorsTensor]) -> [SafetensorsTensor] {
        guard !tensors.isEmpty, tensors.allSatisfy({ $0.name.hasPrefix("module.") }) else { return tensors }
        return tensors.map { tensor in
            var copy = tensor
            copy.name = String(tensor.name.dropFirst("module.".count))
            return copy
        }
    }

    /// Downloads the files a mirror pins (verified against their SHA-256) into the data folder's
    /// store and imports each. Files already stored are not downloaded again.
    /// - Throws: `MirrorError` when the mirror pins no files; the first failed download or import.
    public static func fetchAndImport(mirror: String, details: [String: StudyModelDetails], folder: DataFolder,
                                      catalog: CatalogStore, downloader: Downloader,
                                      environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (imported: [ImportedModel], downloaded: Int) {
        let registry = MirrorRegistry(userFolder: folder.url.appendingPathComponent("mirrors"), environment: environment)
        let definition = try registry.mirror(named: mirror)
        guard let files = definition.files, !files.isEmpty else {
            throw MirrorError.badDefinition(mirror, "publishes no pinned files to fetch")
        }
        let client = MirrorClient(definition: definition, downloader: downloader, environment: environment)
        let requests = try files.map { file in
            client.request(for: try RemotePath(file.path), expected: ExpectedContent(size: file.size, sha256: file.sha256))
        }
        let results = downloader.download(requests)
        var imported: [ImportedModel] = []
        var networks = ImportNetworks()
        var downloaded = 0
        for (file, result) in zip(files, results) {
            if case .failed(let error) = result.outcome { throw error }
            guard let stored = result.file else { throw MirrorError.badDefinition(mirror, "\(file.path): no file was stored") }
            if result.bytesTransferred > 0 { downloaded += 1 }
            imported.append(try importModel(file: stored.url, name: try RemotePath(file.path).lastSegment,
                                            path: stored.url.path + " (\(file.path))", details: details,
                                            folder: folder, catalog: catalog, networks: &networks))
        }
        return (imported, downloaded)
    }
}

/// Networks that imported tensors are loaded into, one per architecture. Making a network draws
/// its Kaiming initialization (a fifth of an import's work), so a batch of imports shares them;
/// one is reused only for a checkpoint that holds its whole state, so every value is replaced.
public struct ImportNetworks {
    private var networks: [(network: ResidualUNet, names: Set<String>)] = []

    public init() {}

    mutating func network(for architecture: UNetArchitecture, names: Set<String>) -> ResidualUNet {
        if let found = networks.first(where: { $0.network.architecture == architecture && $0.names == names }) {
            return found.network
        }
        let network = ResidualUNet(architecture: architecture, seed: 0)
        networks.append((network, Set(network.stateTensors().map(\.name))))
        return network
    }
}
