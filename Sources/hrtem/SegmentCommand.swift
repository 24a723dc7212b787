import ArgumentParser
import Catalog
import Experiments
import Foundation
import Micrograph
import Preprocessing
import Segmentation

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Segment whole raw frames with one model or an ensemble of fold models; map where they disagree; measure the particles.",
        discussion: """
        Each frame is preprocessed as the models' dataset version was (its recipe.json; the
        study's recipe when that folder is gone), cut into the recipe's patch size, segmented
        tile by tile by every model and stitched. The ensemble's particle probability is the
        mean of the models'; the mask is where it is above 0.5; the uncertainty maps are the
        per-pixel standard deviation of the models' probabilities and the predictive entropy
        (bits) of the mean. The frame's uncertainty score is the mean standard deviation.

        For each frame, --out DIR receives <stem>_probability.npy, <stem>_std.npy,
        <stem>_entropy.npy (float32, height x width), <stem>_mask.png (0/255),
        <stem>_overlay.png (the mask tinted red), <stem>_uncertainty.png (the standard deviation
        in yellow over the frame), <stem>_particles.csv and <stem>_histogram.svg (sizes in nm
        from the catalog's pixel scale or the frame's calibration, else in px), and
        summary.json for all frames.

        Models: --models M1,M2,... (model folders), or --trained-on DATASET (every model trained
        on that dataset version: registered in the catalog or found under the data folder's
        models/). They must share an architecture and a preprocessing recipe.

        The one-model form of earlier versions still works: hrtem segment MODEL FRAME --out mask.png.

        Examples:
          hrtem segment frames/*.dm3 --trained-on high-dose --out segmented/
          hrtem segment frame.dm3 --models runs/f0,runs/f1,runs/f2 --out segmented/
          hrtem segment runs/au884-f2 frame.dm3 --out mask.png --overlay overlay.png
        """)

    @OptionGroup var data: DataOptions
    @Argument(help: "Raw frames (DM3/DM4/TIFF/MRC/SER/EMD, or catalogued frames); or MODEL FRAME.") var inputs: [String]
    @Option(help: "Comma-separated model folders.") var models: String?
    @Option(name: .customLong("trained-on"), help: "Use every model trained on this dataset version (NAME[@VERSION] or a folder).")
    var trainedOn: String?
    @Option(help: "Output folder (for MODEL FRAME: the mask PNG to write).") var out: String
    @Option(help: "MODEL FRAME form: also write the frame with the mask tinted red (PNG).") var overlay: String?
    @Option(help: "Also write a self-contained HTML report (report.html) into this folder.") var report: String?
    @Flag(help: "Refuse a frame whose pixel size is unknown instead of giving its particle sizes in px.") var nm = false
    @Option(help: "Tile size (default: the recipe's patch size, else 512).") var tile: Int?
    @Option(help: "Threads.") var threads = 2

    func validate() throws {
        if models != nil && trainedOn != nil { throw ValidationError("give --models or --trained-on, not both") }
        if models == nil && trainedOn == nil && inputs.count != 2 {
            throw ValidationError("give the models with --models M1,M2,... or --trained-on DATASET (or the form MODEL FRAME)")
        }
        if inputs.isEmpty { throw ValidationError("give at least one frame") }
        if threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if let tile, tile < 1 { throw ValidationError("--tile must be positive, got \(tile)") }
        if report != nil && models == nil && trainedOn == nil {
            throw ValidationError("--report needs the ensemble form (--models or --trained-on)")
        }
    }

    func run() throws {
        let folder = data.folder
        let singleModel = models == nil && trainedOn == nil
        let modelFolders: [URL]
        let frames: [String]
        if singleModel {
            modelFolders = [MatrixCLI.absoluteURL(inputs[0])]
            frames = [inputs[1]]
        } else if let models {
            modelFolders = models.split(separator: ",").map { MatrixCLI.absoluteURL(String($0).trimmingCharacters(in: .whitespaces)) }
            frames = inputs
        } else {
            modelFolders = try EnsembleModels.trainedOn(trainedOn!, in: folder)
            frames = inputs
        }
        let ensemble = try EnsembleModels.load(modelFolders, threads: threads)
        let size = tile ?? ensemble.patch
        guard size % ensemble.sizeMultiple == 0 else {
            throw ValidationError("tile \(size) is not a multiple of \(ensemble.sizeMultiple)")
        }
        let catalog = FileManager.default.fileExists(atPath: folder.catalogFile.path) ? try CatalogStore(folder: folder) : nil
        if singleModel {
            try segmentOne(frame: frames[0], ensemble: ensemble, tile: size, catalog: catalog)
            return
        }
        let outFolder = MatrixCLI.absoluteURL(out)
        try FileManager.default.createDirectory(at: outFolder, withIntermediateDirectories: true)
        print("\(ensemble.trained.count) model\(ensemble.trained.count == 1 ? "" : "s"): "
              + ensemble.trained.map { "\($0.folder.lastPathComponent) (\($0.card.datasetVersion) fold \($0.card.fold))" }.joined(separator: ", "))
        var summaries = [FrameSegmentation]()
        for frame in frames {
            let summary = try SegmentOutputs.segment(frame: frame, ensemble: ensemble, tile: size, catalog: catalog, to: outFolder,
                                                     requireNanometres: nm)
            summaries.append(summary)
            print(summary.line)
        }
        try writeFileAtomically(try CanonicalJSON.file(summaries), to: outFolder.appendingPathComponent("summary.json"))
        print("\(outFolder.path)/summary.json")
        if let report {
            let page = try SegmentReport.html(frames: summaries, ensemble: ensemble, outputs: outFolder,
                                              catalog: catalog, dataFolder: folder)
            let reportFolder = MatrixCLI.absoluteURL(report)
            try FileManager.default.createDirectory(at: reportFolder, withIntermediateDirectories: true)
            try writeFileAtomically(Data(page.utf8), to: reportFolder.appendingPathComponent("report.html"))
            print("\(reportFolder.path)/report.html")
        }
    }

    /// The one-model form: the mask PNG at --out, the overlay at --overlay.
    private func segmentOne(frame: String, ensemble: EnsembleModels, tile: Int, catalog: CatalogStore?) throws {
        let (image, _, _) = try SegmentOutputs.preprocessedFrame(frame, ensemble: ensemble, catalog: catalog)
        let mask = segmentFrame(network: ensemble.trained[0].network, image: image, tile: tile)
        try writePNG(gray8: mask.map { $0 != 0 ? 255 : 0 }, to: URL(fileURLWithPath: out))
        let particles = mask.pixels.reduce(0) { $0 + Int($1) }
        print("\(out): \(mask.width) x \(mask.height), \(particles) particle pixels (\(String(format: "%.2f", 100 * Double(particles) / Double(max(1, mask.count))))%)")
        if let overlay {
            try SegmentOutputs.writeOverlay(image: image, mask: mask, to: URL(fileURLWithPath: overlay))
            print("\(overlay): overlay")
        }
    }
}

/// Fold models loaded for an ensemble, with the preprocessing and patch size they share.
struct EnsembleModels {
    var trained: [TrainedModel]
    var preprocessing: FramePreprocessing
    var patch: Int
    /// Forward passes run at once (`ensemblePrediction`), each on threads / this many compute threads.
    var concurrentPasses = 1
    var sizeMultiple: Int { trained[0].network.architecture.sizeMultiple }

    /// Loads the models; refuses models of different architectures or preprocessing recipes.
    static func load(_ folders: [URL], threads: Int) throws -> EnsembleModels {
        guard !folders.isEmpty else { throw ValidationError("no model given") }
        var trained = [TrainedModel]()
        var recipes = [(FramePreprocessing, Int)]()
        for folder in folders {
            guard TrainedModel.isFinished(in: folder) else {
                throw ValidationError("\(folder.path) is not a model folder (no \(ModelCard.weightsFileName) and \(ModelCard.fileName))")
            }
            // Each model's preprocessing and patch come from its dataset version (the study's when that is gone).
            let segmenter = try FrameSegmenter(modelFolder: folder, threads: max(1, threads / min(threads, folders.count)))
            trained.append(segmenter.model)
            try checkEnsembleArchitectures(trained.map(\.network.architecture), names: trained.map(\.folder.path))
            recipes.append((segmenter.preprocessing, segmenter.patch))
        }
        for (index, recipe) in recipes.enumerated() where recipe.0 != recipes[0].0 {
            throw ValidationError("\(folders[index].path) was trained on frames preprocessed differently from \(folders[0].path) "
                                  + "(dataset \(trained[index].card.datasetVersion) vs \(trained[0].card.datasetVersion)): "
                                  + "an ensemble needs one preprocessing")
        }
        return EnsembleModels(trained: trained, preprocessing: recipes[0].0, patch: recipes.map(\.1).min()!,
                              concurrentPasses: min(threads, folders.count))
    }

    /// Every finished model trained on the dataset version: those registered in the catalog and
    /// those under the data folder's models/, by fold.
    static func trainedOn(_ dataset: String, in folder: DataFolder) throws -> [URL] {
        let version = try DatasetResolution.resolve(dataset, in: folder)
        var found = [(fold: Int, url: URL)]()
        if FileManager.default.fileExists(atPath: folder.catalogFile.path) {
            for record in try CatalogStore(folder: folder).models() where record.datasetVersion == version.id {
                if let path = record.checkpointPath, TrainedModel.isFinished(in: URL(fileURLWithPath: path)) {
                    found.append((record.fold ?? 0, URL(fileURLWithPath: path)))
                }
            }
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.modelsFolder.path)) ?? []
        for name in names.sorted() {
            let url = folder.modelsFolder.appendingPathComponent(name)
            guard TrainedModel.isFinished(in: url), let card = try? ModelCard.read(from: url),
                  card.datasetVersion == version.id,
                  !found.contains(where: { $0.url.standardizedFileURL.path == url.standardizedFileURL.path }) else { continue }
            found.append((card.fold, url))
        }
        guard !found.isEmpty else {
            throw ValidationError("no model trained on \(version.label) (\(version.id)) is registered in the catalog "
                                  + "or under \(folder.modelsFolder.path): train one (hrtem train / hrtem matrix) or give --models")
        }
        return found.sorted { ($0.fold, $0.url.path) < ($1.fold, $1.url.path) }.map(\.url)
    }
}

/// What `hrtem segment` found on one frame (one entry of summary.json).
struct FrameSegmentation: Codable {
    var frame: String
    /// The frame's dose and pixel scale as known (catalog row, else the file's tags).
    var conditions: AcquisitionConditions
    var stem: String
    var width: Int
    var height: Int
    var models: Int
    /// Mean per-pixel standard deviation of the models' probabilities.
    var uncertainty: Double
    var meanEntropyBits: Double
    /// Fraction of pixels on which the models' hard masks differ.
    var disagreement: Double
    var particlePixelFraction: Double
    var particles: Int
    var unit: String
    var pixelSizeNM: Double?
    var meanEquivalentDiameter: Double?

    var line: String {
        String(format: "%@: %d x %d, %d models, uncertainty %.4f (mean std), entropy %.4f bits, disagreement %.4f, ",
               stem, width, height, models, uncertainty, meanEntropyBits, disagreement)
            + "\(particles) particles" + (meanEquivalentDiameter.map { String(format: ", mean diameter %.3f %@", $0, unit) } ?? "")
    }
}

enum SegmentOutputs {
    /// A frame (a file, or a catalogued frame's file) through the models' preprocessing, and its
    /// pixel size in nm when the catalog or the file's calibration gives one.
    static func preprocessedFrame(_ reference: String, ensemble: EnsembleModels, catalog: CatalogStore?)
        throws -> (image: Raster<Float>, nanometresPerPixel: Double?, conditions: AcquisitionConditions) {
        var url = URL(fileURLWithPath: reference)
        var scale: Double?, dose: Double?
        if let catalog, let record = try? FrameDetails.resolve(reference, in: catalog) {
            scale = record.pixelScaleNm
            dose = record.dose
            if let path = record.path { url = URL(fileURLWithPath: path) }
        }
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ValidationError("\(reference): no such frame file\(catalog == nil ? "" : " and no such frame in the catalog")")
        }
        let raw = try readFrame(at: url)
        if scale == nil { scale = raw.header.nanometresPerPixel }
        if dose == nil { dose = raw.header.microscope.doseElectronsPerA2 }
        return (preprocessFrame(raw.raster, ensemble.preprocessing).image, scale, AcquisitionConditions(dose: dose, pixelScale: scale))
    }

    static func segment(frame: String, ensemble: EnsembleModels, tile: Int, catalog: CatalogStore?, to folder: URL,
                        requireNanometres: Bool = false) throws -> FrameSegmentation {
        let (image, scale, conditions) = try preprocessedFrame(frame, ensemble: ensemble, catalog: catalog)
        if requireNanometres && scale == nil {
            throw ValidationError("\(frame): no pixel size known (no length calibration in the file, no pixel scale in the catalog): "
                                  + "particle sizes would be in px; drop --nm or catalogue the frame with its pixel scale")
        }
        let prediction = try ensemblePrediction(networks: ensemble.trained.map(\.network),
                                                names: ensemble.trained.map(\.folder.path), image: image, tile: tile,
                                                concurrentPasses: ensemble.concurrentPasses)
        let stem = ParticleInput.stem(of: URL(fileURLWithPath: frame).lastPathComponent)
        let file = { (suffix: String) in folder.appendingPathComponent("\(stem)_\(suffix)") }
        let shape = [image.height, image.width]
        try writeNPY(NPYArray(shape: shape, float32: prediction.probability.pixels), to: file("probability.npy"))
        try writeNPY(NPYArray(shape: shape, float32: prediction.deviation.pixels), to: file("std.npy"))
        try writeNPY(NPYArray(shape: shape, float32: prediction.entropy.pixels), to: file("entropy.npy"))
        try writePNG(gray8: prediction.mask.map { $0 != 0 ? 255 : 0 }, to: file("mask.png"))
        try writeOverlay(image: image, mask: prediction.mask, to: file("overlay.png"))
        try writeUncertainty(image: image, deviation: prediction.deviation, to: file("uncertainty.png"))
        let lengthScale = LengthScale(nanometresPerPixel: scale)
        let particles = findParticles(in: prediction.mask).particles
        let diameters = particles.map { $0.equivalentDiameter * lengthScale.lengthPerPixel }
        try writeFileAtomically(Data(ParticleTable.csv(particles, scale: lengthScale).utf8), to: file("particles.csv"))
        try writeFileAtomically(Data(ParticleTable.histogramSVG(diameters: diameters, unit: lengthScale.unit,
                                                                title: "\(stem): \(particles.count) particles").utf8),
                                to: file("histogram.svg"))
        let particlePixels = prediction.mask.pixels.reduce(0) { $0 + Int($1) }
        return FrameSegmentation(frame: frame, conditions: conditions, stem: stem, width: image.width, height: image.height, models: prediction.modelCount,
                                 uncertainty: prediction.meanDeviation, meanEntropyBits: prediction.meanEntropy,
                                 disagreement: prediction.disagreement,
                                 particlePixelFraction: Double(particlePixels) / Double(max(1, image.count)),
                                 particles: particles.count, unit: lengthScale.unit, pixelSizeNM: scale,
                                 meanEquivalentDiameter: diameters.isEmpty ? nil : diameters.reduce(0, +) / Double(diameters.count))
    }

    /// The frame's gray levels stretched between its 1st and 99th percentiles.
    static func grayLevels(_ image: Raster<Float>) -> [UInt8] {
        let sorted = image.pixels.sorted()
        let low = sorted[sorted.count / 100], high = sorted[sorted.count * 99 / 100]
        return image.pixels.map { UInt8(max(0, min(255, ($0 - low) / max(1e-12, high - low) * 255))) }
    }

    /// The frame in gray with the mask tinted red.
    static func writeOverlay(image: Raster<Float>, mask: Raster<UInt8>, to url: URL) throws {
        let gray = grayLevels(image)
        var rgb = [UInt8](repeating: 0, count: image.count * 3)
        for i in 0..<image.count {
            let particle = mask.pixels[i] != 0
            rgb[3 * i] = particle ? UInt8(min(255, Int(gray[i]) / 2 + 128)) : gray[i]
            rgb[3 * i + 1] = particle ? gray[i] / 2 : gray[i]
            rgb[3 * i + 2] = particle ? gray[i] / 2 : gray[i]
        }
        try writePNG(rgb: rgb, width: image.width, height: image.height, to: url)
    }

    /// The frame in dim gray with the models' standard deviation in yellow (0.5, the largest
    /// possible for probabilities, is full yellow).
    static func writeUncertainty(image: Raster<Float>, deviation: Raster<Float>, to url: URL) throws {
        let gray = grayLevels(image)
        var rgb = [UInt8](repeating: 0, count: image.count * 3)
        for i in 0..<image.count {
            let weight = min(1, max(0, Double(deviation.pixels[i]) * 2))
            let base = Double(gray[i]) * 0.5
            rgb[3 * i] = UInt8(base * (1 - weight) + 255 * weight)
            rgb[3 * i + 1] = UInt8(base * (1 - weight) + 220 * weight)
            rgb[3 * i + 2] = UInt8(base * (1 - weight))
        }
        try writePNG(rgb: rgb, width: image.width, height: image.height, to: url)
    }
}
