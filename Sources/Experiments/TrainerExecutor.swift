import Catalog
import Foundation
import Micrograph
import Segmentation

/// Runs units with the bundled residual U-Net trainer and evaluator (module Segmentation).
///
/// A training unit trains into `<data>/models/<unit id>/` (`model.safetensors`, `model.json`,
/// `training.csv`, `checkpoint.safetensors`); a folder that already holds a finished model of
/// the same dataset version, fold and configuration is reused as it is, and an interrupted
/// training resumes from its checkpoint. An evaluation loads the model and the test version and
/// scores the unit's patches (its test fold on the diagonal, every patch elsewhere) with the
/// study's metrics, dihedral x8; for fold 0 it also writes a sample overlay PNG under
/// `<model folder>/overlays/`.
public struct TrainerExecutor: UnitExecutor {
    public let dataFolder: DataFolder
    /// Receives the trainer's progress (every batch and every epoch) with the unit it belongs to.
    public var progress: (@Sendable (TrainUnit, TrainingProgress) -> Void)?

    public init(dataFolder: DataFolder, progress: (@Sendable (TrainUnit, TrainingProgress) -> Void)? = nil) {
        self.dataFolder = dataFolder
        self.progress = progress
    }

    /// Where a unit's model goes unless told otherwise: `<data>/models/<unit id>/`.
    public func modelFolder(_ unit: TrainUnit) -> URL { dataFolder.modelsFolder.appendingPathComponent(unit.id) }

    public func train(_ unit: TrainUnit) throws -> ModelRef { try train(unit, into: modelFolder(unit)) }

    /// Trains the unit's fold model into `folder`, or finds it there already finished with the
    /// same dataset version, fold and settings; an interrupted training resumes from its
    /// checkpoint.
    public func train(_ unit: TrainUnit, into folder: URL) throws -> ModelRef {
        if TrainedModel.isFinished(in: folder) {
            let card = try ModelCard.read(from: folder)
            if card.datasetVersion == unit.dataset.id, card.fold == unit.fold, card.configuration == unit.settings {
                return ModelRef(id: unit.id, folder: folder.path, card: card)
            }
        }
        let progress = self.progress
        let model = try Segmentation.train(datasetFolder: URL(fileURLWithPath: unit.dataset.folder), fold: unit.fold,
                                           settings: unit.settings, output: folder) { progress?(unit, $0) }
        return ModelRef(id: unit.id, folder: folder.path, card: model.card)
    }

    public func evaluate(_ unit: EvaluateUnit, model: ModelRef) throws -> Evaluation {
        let started = Date()
        let trained = try TrainedModel.load(from: URL(fileURLWithPath: model.folder))
        let dataset = try PatchDataset.load(from: URL(fileURLWithPath: unit.testDataset.folder))
        let rows: [Int]
        if let fold = unit.scope.fold { rows = try dataset.fold(fold).test } else { rows = Array(0..<dataset.count) }
        guard !rows.isEmpty else {
            throw ExperimentError("no patches to score in \(unit.testDataset.folder)", subject: unit.label)
        }
        trained.network.compute = ComputeSettings(threads: unit.threads)
        let metrics = Segmentation.evaluate(network: trained.network, dataset: dataset, rows: rows, dihedral: unit.dihedral)
        let particles = particleScores(network: trained.network, dataset: dataset, rows: rows,
                                       scale: LengthScale(nanometresPerPixel: ParticleReport.pixelScale(of: unit.testDataset)))
        var overlays: [String]?
        if unit.fold == 0 {
            let url = URL(fileURLWithPath: model.folder).appendingPathComponent("overlays/\(unit.id).png")
            try writeOverlay(network: trained.network, dataset: dataset, row: rows[0], to: url)
            overlays = [url.path]
        }
        return Evaluation(metrics: metrics, sampleOverlays: overlays, seconds: Date().timeIntervalSince(started),
                          particles: particles)
    }

    /// A picture of one patch: the image in gray, pixels both predicted and labelled particle
    /// tinted green, predicted only (false positives) red, labelled only (false negatives) blue.
    /// At most 256 pixels a side (nearest-neighbour subsampling).
    func writeOverlay(network: ResidualUNet, dataset: PatchDataset, row: Int, to url: URL) throws {
        let side = dataset.height, pixels = dataset.patchPixels
        let input = Tensor([1, 1, side, dataset.width])
        dataset.images.withUnsafeBufferPointer { images in
            input.data.update(from: images.baseAddress! + row * pixels, count: pixels)
        }
        let logits = network.forward(input, training: false)
        let image = UnsafeBufferPointer(start: input.data, count: pixels)
        let low = image.min() ?? 0, high = image.max() ?? 1
        let range = high > low ? high - low : 1
        let step = max(1, (max(side, dataset.width) + 255) / 256)
        let outHeight = (side + step - 1) / step, outWidth = (dataset.width + step - 1) / step
        var rgb = [UInt8](repeating: 0, count: outHeight * outWidth * 3)
        for y in 0..<outHeight {
            for x in 0..<outWidth {
                let index = (y * step) * dataset.width + x * step
                let gray = Double((input.data[index] - low) / range) * 255
                let predicted = logits.data[pixels + index] > logits.data[index]
                let truth = dataset.labels[row * pixels + index] != 0
                var colour = (gray, gray, gray)
                switch (predicted, truth) {
                case (true, true): colour = (gray * 0.5, gray * 0.5 + 110, gray * 0.5)
                case (true, false): colour = (gray * 0.5 + 127, gray * 0.5, gray * 0.5)
                case (false, true): colour = (gray * 0.5, gray * 0.5, gray * 0.5 + 127)
                case (false, false): break
                }
                let out = (y * outWidth + x) * 3
                rgb[out] = UInt8(max(0, min(255, colour.0)))
                rgb[out + 1] = UInt8(max(0, min(255, colour.1)))
                rgb[out + 2] = UInt8(max(0, min(255, colour.2)))
            }
        }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writePNG(rgb: rgb, width: outWidth, height: outHeight, to: url)
    }
}
