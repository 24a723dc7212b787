import Foundation
import Micrograph

/// One optimisation step of a network: forward (training mode), mean softmax cross-entropy,
/// backward, Adam.
public final class TrainingStep {
    public let network: ResidualUNet
    public var optimizer: Adam

    public init(network: ResidualUNet, learningRate: Double) {
        self.network = network
        optimizer = Adam(learningRate: learningRate)
    }

    /// Returns the batch loss and the logits. `labels` is `[n * h * w]` class indices.
    @discardableResult
    public func step(input: Tensor, labels: [UInt8]) -> (loss: Double, logits: Tensor) {
        network.zeroGradients()
        let logits = network.forward(input, training: true)
        let gradient = Tensor(uninitialized: logits.shape)
        let compute = network.compute
        let loss = compute.measure("loss") {
            labels.withUnsafeBufferPointer { softmaxCrossEntropy(logits: logits, labels: $0, gradient: gradient, compute: compute) }
        }
        network.backward(gradient)
        compute.measure("adam") { optimizer.update(network.parameters) }
        return (loss, logits)
    }
}

/// Everything that decides a training run (with the dataset and fold).
public struct TrainingConfiguration: Codable, Equatable, Sendable {
    public var architecture: UNetArchitecture = .study
    public var epochs = 250
    public var batchSize = 32
    public var learningRate = 1e-4
    /// Seed of initialization, shuffling and augmentation; nil = the fold's seed from folds.json.
    public var seed: UInt64?
    public var noise: NoiseAugmentation = .none
    /// The online flip + rotation augmentation of training samples.
    public var rotate = true
    /// Dihedral x8 expansion of train, validation and test sets.
    public var dihedral = true
    public var threads = 2

    public init() {}
}

/// What `hrtem train` leaves in its output folder: `model.safetensors` (the weights with the
/// lowest validation loss, PyTorch state_dict names), `model.json` (this card),
/// `training.csv` (one row per epoch) and `checkpoint.safetensors` (the last epoch's weights and
/// optimizer state, for resuming).
public struct ModelCard: Codable, Equatable, Sendable {
    public var format = 1
    public var architecture: UNetArchitecture
    public var parameters: Int
    public var datasetVersion: String
    public var datasetFolder: String
    public var fold: Int
    public var seed: UInt64
    public var configuration: TrainingConfiguration
    public var epochs: Int
    public var bestEpoch: Int
    public var bestValidationLoss: Double
    /// Validation metrics of the kept weights.
    public var validation: Metrics?
    /// Test-fold metrics of the kept weights (dihedral x8 when configured).
    public var test: Metrics?
    public var hrtemVersion: String
    public var trainingSeconds: Double
}

/// The result of `train`: the kept network and its card.
public struct TrainedModel {
    public var network: ResidualUNet
    public var card: ModelCard
    public var folder: URL

    public static func load(from folder: URL) throws -> TrainedModel {
        let cardURL = folder.appendingPathComponent("model.json")
        let card: ModelCard
        do { card = try JSONDecoder().decode(ModelCard.self, from: Data(contentsOf: cardURL)) } catch {
            throw ModelError(file: cardURL.path, "cannot read the model card: \(error)")
        }
        let network = try ResidualUNet.load(from: folder.appendingPathComponent("model.safetensors"))
        return TrainedModel(network: network, card: card, folder: folder)
    }
}

/// Progress of a training run, reported after every batch and every epoch.
public struct TrainingProgress: Sendable {
    public var epoch: Int
    public var epochs: Int
    public var batch: Int
    public var batches: Int
    public var trainingLoss: Double
    public var trainingDice: Double
    public var validation: Metrics?
    public var secondsThisEpoch: Double
    public var secondsPerEpoch: Double?
    public var estimatedSecondsLeft: Double?
    public var epochFinished: Bool
}

/// A sample of a set: a patch row and one of the eight dihedral transforms.
struct Sample: Equatable { var patch: Int; var transform: Int }

func expandSamples(_ rows: [Int], dihedral: Bool, shuffleSeed: UInt64) -> [Sample] {
    var samples: [Sample] = []
    for row in rows { for transform in 0..<(dihedral ? 8 : 1) { samples.append(Sample(patch: row, transform: transform)) } }
    var random = SplitMix64(seed: shuffleSeed)
    samples.shuffle(using: &random)
    return samples
}

/// Builds the input tensor `[n, 1, P, P]` and labels of `samples`, each transformed and, when
/// `augment` is given, augmented with the generator `augment(sampleIndex)` returns.
func makeBatch(_ dataset: PatchDataset, _ samples: ArraySlice<Sample>, rotate: Bool, noise: NoiseAugmentation,
               generator: ((Int) -> SplitMix64)?, compute: ComputeSettings) -> (Tensor, [UInt8]) {
    let p = dataset.patchPixels, side = dataset.height
    let input = Tensor([samples.count, 1, dataset.height, dataset.width])
    var labels = [UInt8](repeating: 0, count: samples.count * p)
    let list = Array(samples)
    labels.withUnsafeMutableBufferPointer { labelBuffer in
        let labelBase = labelBuffer.baseAddress!
        dataset.images.withUnsafeBufferPointer { images in
            dataset.labels.withUnsafeBufferPointer { sourceLabels in
                compute.parallelFor(list.count) { range in
                    for index in range {
                        let sample = list[index]
                        let image = input.data + index * p, label = labelBase + index * p
                        dihedralCopy(images.baseAddress! + sample.patch * p, into: image, side: side, transform: sample.transform)
                        dihedralCopy(sourceLabels.baseAddress! + sample.patch * p, into: label, side: side, transform: sample.transform)
                        guard var random = generator?(index) else { continue }
                        augmentSample(image: image, label: label, side: side, rotate: rotate, noise: noise, random: &random)
                    }
                }
            }
        }
    }
    return (input, labels)
}

/// Scores `network` (evaluation mode) on `rows` of `dataset`: hard and soft Dice per patch
/// (smoothing 1, mean over patches), pooled false-positive / false-negative rates and the mean
/// cross-entropy. `dihedral` scores each patch under all eight symmetries (the study's test
/// protocol). `noise` (with `seed`) perturbs the inputs, as the study does for validation.
public func evaluate(network: ResidualUNet, dataset: PatchDataset, rows: [Int], dihedral: Bool = true,
                     batchSize: Int = 8, noise: NoiseAugmentation = .none, seed: UInt64 = 0) -> Metrics {
    evaluateSamples(network: network, dataset: dataset, samples: expandSamples(rows, dihedral: dihedral, shuffleSeed: 7427),
                    batchSize: batchSize, noise: noise, seed: seed)
}

/// Scores a trained model on rows of a dataset version folder (see `evaluate(network:...)`).
public func evaluate(model: TrainedModel, datasetFolder: URL, indices: [Int], dihedral: Bool = true) throws -> Metrics {
    let dataset = try PatchDataset.load(from: datasetFolder)
    if let bad = indices.first(where: { $0 < 0 || $0 >= dataset.count }) {
        throw FormatError(file: datasetFolder.path, "patch index \(bad) outside 0..<\(dataset.count)")
    }
    return evaluate(network: model.network, dataset: dataset, rows: indices, dihedral: dihedral)
}

/// Trains the residual U-Net on one fold of a dataset version (PIPELINE.md "Splits and
/// augmentation" and "Model"): dihedral x8 expansion of every set, online flip + rotation and
/// optional noise on training samples (noise also on validation), Adam, mean cross-entropy,
/// validation each epoch, keeping the weights with the lowest validation loss.
///
/// Writes into `output` (created if needed) `model.safetensors`, `model.json`, `training.csv`
/// and `checkpoint.safetensors`; when a checkpoint of the same configuration is already there,
/// continues after its epoch. The same dataset, fold, configuration and thread count give the
/// same bytes.
/// - Throws: `FormatError` / `ModelError` for unreadable inputs, a fold that does not exist, a
///   patch size the network cannot take, or a checkpoint made with another configuration.
public func train(datasetFolder: URL, fold foldIndex: Int, config: TrainingConfiguration, output: URL,
                  progress: ((TrainingProgress) -> Void)? = nil) throws -> TrainedModel {
    let dataset = try PatchDataset.load(from: datasetFolder)
    return try train(dataset: dataset, fold: foldIndex, config: config, output: output, progress: progress)
}

/// As `train(datasetFolder:...)`, on a dataset already in memory.
public func train(dataset: PatchDataset, fold foldIndex: Int, config: TrainingConfiguration, output: URL,
                  progress: ((TrainingProgress) -> Void)? = nil) throws -> TrainedModel {
    let started = Date()
    let fold = try dataset.fold(foldIndex)
    let multiple = config.architecture.sizeMultiple
    guard dataset.height == dataset.width, dataset.height % multiple == 0 else {
        throw FormatError(file: dataset.folder.path, "patches are \(dataset.height) x \(dataset.width); the network needs square patches, a multiple of \(multiple)")
    }
    guard !fold.train.isEmpty, !fold.validation.isEmpty else {
        throw FormatError(file: dataset.folder.appendingPathComponent("folds.json").path,
                          "fold \(foldIndex) has \(fold.train.count) training and \(fold.validation.count) validation patches; both must be non-empty")
    }
    let seed = config.seed ?? UInt64(fold.seed)
    let compute = ComputeSettings(threads: config.threads)
    let network = ResidualUNet(architecture: config.architecture, seed: seed, compute: compute)
    let stepper = TrainingStep(network: network, learningRate: config.learningRate)
    let trainingSamples = expandSamples(fold.train, dihedral: config.dihedral, shuffleSeed: 9201)
    let validationSamples = expandSamples(fold.validation, dihedral: config.dihedral, shuffleSeed: 6274)
    // A checkpoint may be continued for more epochs; everything else must match.
    var resumable = config
    resumable.epochs = 0
    let configurationText = String(decoding: try canonicalJSON(resumable), as: UTF8.self)

    try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
    let checkpointURL = output.appendingPathComponent("checkpoint.safetensors")
    let modelURL = output.appendingPathComponent("model.safetensors")
    let csvURL = output.appendingPathComponent("training.csv")
    let csvHeader = "epoch,train_loss,train_hard_dice,validation_loss,validation_hard_dice,validation_soft_dice,seconds\n"
    var csvRows: [String] = []
    var firstEpoch = 1
    var bestLoss = Double.infinity, bestEpoch = 0
    var bestState = network.stateTensors()
    var bestValidation: Metrics?

    // Resume: the checkpoint holds the last finished epoch's weights and optimizer state; the
    // per-epoch randomness is derived from (seed, epoch), so continuing reproduces the same run.
    if FileManager.default.fileExists(atPath: checkpointURL.path) {
        let checkpoint = try readSafetensors(from: checkpointURL)
        guard checkpoint.metadata["configuration"] == configurationText,
              checkpoint.metadata["dataset"] == dataset.versionID, checkpoint.metadata["fold"] == String(foldIndex) else {
            throw ModelError(file: checkpointURL.path, "checkpoint was made with another dataset, fold or configuration; remove the folder or choose another output")
        }
        try network.loadState(checkpoint.tensors.filter { !$0.name.hasPrefix("optimizer.") && !$0.name.hasPrefix("best.") }, file: checkpointURL.path)
        try stepper.optimizer.loadState(checkpoint.tensors.filter { $0.name.hasPrefix("optimizer.") }.map {
            var t = $0; t.name = String(t.name.dropFirst("optimizer.".count)); return t
        }, into: network.parameters, file: checkpointURL.path)
        stepper.optimizer.step = Int(checkpoint.metadata["adam_step"] ?? "0") ?? 0
        firstEpoch = (Int(checkpoint.metadata["epoch"] ?? "0") ?? 0) + 1
        bestLoss = Double(checkpoint.metadata["best_loss"] ?? "") ?? .infinity
        bestEpoch = Int(checkpoint.metadata["best_epoch"] ?? "0") ?? 0
        bestState = checkpoint.tensors.filter { $0.name.hasPrefix("best.") }.map {
            var t = $0; t.name = String(t.name.dropFirst("best.".count)); return t
        }
        if let data = checkpoint.metadata["best_validation"]?.data(using: .utf8) {
            bestValidation = try? JSONDecoder().decode(Metrics.self, from: data)
        }
        if let text = try? String(contentsOf: csvURL, encoding: .utf8) {
            csvRows = text.split(separator: "\n").dropFirst().map(String.init)
                .filter { Int($0.split(separator: ",").first ?? "") ?? Int.max < firstEpoch }
        }
    }

    let batches = (trainingSamples.count + config.batchSize - 1) / config.batchSize
    var epochDurations: [Double] = []
    if firstEpoch <= config.epochs {
        for epoch in firstEpoch...config.epochs {
            let epochStart = Date()
            let epochRandom = SplitMix64(seed: seed).derived(UInt64(epoch))
            var order = trainingSamples
            var shuffler = epochRandom.derived(0)
            order.shuffle(using: &shuffler)
            var lossSum = 0.0, diceSum = 0.0, seen = 0
            for batch in 0..<batches {
                let start = batch * config.batchSize, end = min(order.count, start + config.batchSize)
                let augmentation = epochRandom.derived(1)
                let (input, labels) = makeBatch(dataset, order[start..<end], rotate: config.rotate, noise: config.noise,
                                                generator: { augmentation.derived(UInt64(start + $0)) }, compute: compute)
                let (loss, logits) = stepper.step(input: input, labels: labels)
                lossSum += loss * Double(end - start)
                diceSum += diceScores(logits: logits, labels: labels).hard.reduce(0, +)
                seen += end - start
                progress?(TrainingProgress(epoch: epoch, epochs: config.epochs, batch: batch + 1, batches: batches,
                                           trainingLoss: lossSum / Double(seen), trainingDice: diceSum / Double(seen),
                                           validation: nil, secondsThisEpoch: Date().timeIntervalSince(epochStart),
                                           secondsPerEpoch: epochDurations.last, estimatedSecondsLeft: nil, epochFinished: false))
            }
            // Validation noise is fixed per sample (seeded from the run, not the epoch) so every
            // epoch is judged on the same inputs.
            let metrics = evaluateSamples(network: network, dataset: dataset, samples: validationSamples,
                                          batchSize: config.batchSize, noise: config.noise,
                                          seed: seed ^ 0xFA11_FA11)
            if metrics.loss < bestLoss {
                bestLoss = metrics.loss
                bestEpoch = epoch
                bestState = network.stateTensors()
                bestValidation = metrics
            }
            let seconds = Date().timeIntervalSince(epochStart)
            epochDurations.append(seconds)
            csvRows.append([String(epoch), format(lossSum / Double(seen)), format(diceSum / Double(seen)),
                            format(metrics.loss), format(metrics.hardDice), format(metrics.softDice),
                            String(format: "%.3f", seconds)].joined(separator: ","))
            try writeFileAtomically(Data((csvHeader + csvRows.map { $0 + "\n" }.joined()).utf8), to: csvURL)
            var metadata = ["configuration": configurationText, "dataset": dataset.versionID, "fold": String(foldIndex),
                            "epoch": String(epoch), "adam_step": String(stepper.optimizer.step),
                            "best_loss": "\(bestLoss)", "best_epoch": String(bestEpoch)]
            if let bestValidation { metadata["best_validation"] = String(decoding: try canonicalJSON(bestValidation), as: UTF8.self) }
            let optimizerState = stepper.optimizer.stateTensors(network.parameters).map {
                var t = $0; t.name = "optimizer." + t.name; return t
            }
            let best = bestState.map { var t = $0; t.name = "best." + t.name; return t }
            try writeSafetensors(SafetensorsFile(tensors: network.stateTensors() + optimizerState + best, metadata: metadata),
                                 to: checkpointURL)
            let mean = epochDurations.reduce(0, +) / Double(epochDurations.count)
            progress?(TrainingProgress(epoch: epoch, epochs: config.epochs, batch: batches, batches: batches,
                                       trainingLoss: lossSum / Double(seen), trainingDice: diceSum / Double(seen),
                                       validation: metrics, secondsThisEpoch: seconds, secondsPerEpoch: mean,
                                       estimatedSecondsLeft: mean * Double(config.epochs - epoch), epochFinished: true))
        }
    }

    let kept = ResidualUNet(architecture: config.architecture, seed: 0, compute: compute)
    try kept.loadState(bestState, file: checkpointURL.path)
    let test = fold.test.isEmpty ? nil : evaluate(network: kept, dataset: dataset, rows: fold.test, dihedral: config.dihedral,
                                                   batchSize: config.batchSize)
    let card = ModelCard(architecture: config.architecture, parameters: kept.parameterCount,
                         datasetVersion: dataset.versionID, datasetFolder: dataset.folder.path, fold: foldIndex, seed: seed,
                         configuration: config, epochs: config.epochs, bestEpoch: bestEpoch, bestValidationLoss: bestLoss,
                         validation: bestValidation, test: test, hrtemVersion: hrtemVersion,
                         trainingSeconds: Date().timeIntervalSince(started))
    try kept.save(to: modelURL, metadata: ["dataset": dataset.versionID, "fold": String(foldIndex), "best_epoch": String(bestEpoch)])
    try writeFileAtomically(try canonicalJSON(card, pretty: true), to: output.appendingPathComponent("model.json"))
    return TrainedModel(network: kept, card: card, folder: output)
}

/// Metrics of `network` on an explicit sample list (validation inside `train`).
func evaluateSamples(network: ResidualUNet, dataset: PatchDataset, samples: [Sample], batchSize: Int,
                     noise: NoiseAugmentation, seed: UInt64) -> Metrics {
    var accumulator = MetricsAccumulator()
    var start = 0
    let base = SplitMix64(seed: seed)
    while start < samples.count {
        let end = min(samples.count, start + batchSize)
        let first = start
        let (input, labels) = makeBatch(dataset, samples[start..<end], rotate: false, noise: noise,
                                        generator: noise == .none ? nil : { base.derived(UInt64(first + $0)) },
                                        compute: network.compute)
        let logits = network.forward(input, training: false)
        let loss = labels.withUnsafeBufferPointer { softmaxCrossEntropy(logits: logits, labels: $0, compute: network.compute) }
        accumulator.add(logits: logits, labels: labels, loss: loss)
        start = end
    }
    return accumulator.metrics
}

private func format(_ value: Double) -> String { String(format: "%.6f", value) }

/// JSON with sorted keys (so equal values give equal bytes).
func canonicalJSON<T: Encodable>(_ value: T, pretty: Bool = false) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    var data = try encoder.encode(value)
    if pretty { data.append(0x0A) }
    return data
}
