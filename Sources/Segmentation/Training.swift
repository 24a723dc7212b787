import Foundation
import Micrograph

/// One optimisation step of a network: forward (training mode), the loss (the study's mean
/// softmax cross-entropy unless `loss` says otherwise), backward, Adam.
public final class TrainingStep {
    public let network: ResidualUNet
    public var optimizer: Adam
    public var loss: TrainingLoss = .crossEntropy
    /// Per-class weights of `TrainingLoss.weightedCrossEntropy`.
    public var classWeights: [Double] = []

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
        let objective = loss, weights = classWeights
        let value = compute.measure("loss") {
            labels.withUnsafeBufferPointer {
                trainingLoss(objective, logits: logits, labels: $0, classWeights: weights, gradient: gradient, compute: compute)
            }
        }
        network.backward(gradient)
        compute.measure("adam") { optimizer.update(network.parameters) }
        return (value, logits)
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


/// Trains the residual U-Net on one fold of a dataset version: dihedral x8 expansion of every
/// set, online flip + rotation and optional noise on training samples (noise also on
/// validation), Adam, mean cross-entropy, validation each epoch, keeping the weights with the
/// lowest validation loss.
///
/// Writes into `output` (created if needed) `model.safetensors`, `model.json`, `training.csv`
/// and `checkpoint.safetensors`; when a checkpoint of the same settings is already there,
/// continues after its epoch. The same dataset, fold, settings and thread count give the same
/// bytes.
/// - Throws: `FormatError` / `ModelError` for unreadable inputs, a fold that does not exist, a
///   patch size the network cannot take, or a checkpoint made with other settings.
public func train(datasetFolder: URL, fold foldIndex: Int, settings: TrainingSettings, output: URL,
                  progress: ((TrainingProgress) -> Void)? = nil) throws -> TrainedModel {
    let dataset = try PatchDataset.load(from: datasetFolder)
    return try train(dataset: dataset, fold: foldIndex, settings: settings, output: output, progress: progress)
}

/// As `train(datasetFolder:...)`, on a dataset already in memory.
///
/// The kept weights are checked (`Collapse.check` on their validation metrics) and the card says
/// when they collapsed. With `settings.collapseRetries`, a collapsed attempt's files move to
/// `collapsed-seed-<seed>/` and the run starts again from the next seed of
/// `collapseRetrySeeds`; the card lists the attempts (`collapsedAttempts`). An interrupted run
/// continues with the attempt it was in.
public func train(dataset: PatchDataset, fold foldIndex: Int, settings: TrainingSettings, output: URL,
                  progress: ((TrainingProgress) -> Void)? = nil) throws -> TrainedModel {
    let fold = try dataset.fold(foldIndex)
    let seeds = collapseRetrySeeds(first: settings.seed ?? UInt64(fold.seed), retries: settings.collapseRetries ?? 0)
    var collapsed: [CollapsedAttempt] = []
    for (attempt, seed) in seeds.enumerated() {
        let keptFolder = output.appendingPathComponent(CollapsedAttempt.folderName(seed: seed))
        if attempt < seeds.count - 1, let earlier = try? ModelCard.read(from: keptFolder), let collapse = earlier.collapse {
            collapsed.append(CollapsedAttempt(seed: seed, collapse: collapse, bestEpoch: earlier.bestEpoch,
                                              validation: earlier.validation, folder: keptFolder.lastPathComponent))
            continue
        }
        var attemptSettings = settings
        if attempt > 0 {
            attemptSettings.seed = seed
            attemptSettings.collapseRetries = nil
        }
        var model = try trainAttempt(dataset: dataset, fold: foldIndex, settings: attemptSettings, output: output, progress: progress)
        guard let collapse = model.card.collapse, attempt < seeds.count - 1 else {
            if attempt > 0 || settings.collapseRetries != nil {
                model.card.configuration = settings
                model.card.collapsedAttempts = collapsed.isEmpty ? nil : collapsed
                try model.card.write(to: output)
            }
            return model
        }
        try? FileManager.default.removeItem(at: keptFolder)
        try FileManager.default.createDirectory(at: keptFolder, withIntermediateDirectories: true)
        let files = TrainingFiles(folder: output)
        for file in [files.weights, files.log, output.appendingPathComponent(ModelCard.fileName)] {
            try FileManager.default.moveItem(at: file, to: keptFolder.appendingPathComponent(file.lastPathComponent))
        }
        try FileManager.default.removeItem(at: files.checkpoint)
        collapsed.append(CollapsedAttempt(seed: seed, collapse: collapse, bestEpoch: model.card.bestEpoch,
                                          validation: model.card.validation, folder: keptFolder.lastPathComponent))
    }
    preconditionFailure("the seed list always has a last attempt")
}

/// One training run from one seed (`settings.seed`, else the fold's).
func trainAttempt(dataset: PatchDataset, fold foldIndex: Int, settings: TrainingSettings, output: URL,
                  progress: ((TrainingProgress) -> Void)?) throws -> TrainedModel {
    let started = Date()
    let fold = try dataset.fold(foldIndex)
    let multiple = settings.architecture.sizeMultiple
    guard dataset.height == dataset.width, dataset.height % multiple == 0 else {
        throw FormatError(file: dataset.folder.path, "patches are \(dataset.height) x \(dataset.width); the network needs square patches, a multiple of \(multiple)")
    }
    guard !fold.train.isEmpty, !fold.validation.isEmpty else {
        throw FormatError(file: dataset.version.foldsFile.path,
                          "fold \(foldIndex) has \(fold.train.count) training and \(fold.validation.count) validation patches; both must be non-empty")
    }
    let seed = settings.seed ?? UInt64(fold.seed)
    let compute = ComputeSettings(threads: settings.threads)
    let network = ResidualUNet(architecture: settings.architecture, seed: seed, compute: compute)
    if settings.deadStartSeeds?.contains(seed) == true { network.saturateBackground() }
    let stepper = TrainingStep(network: network, learningRate: settings.learningRate)
    let objective = settings.loss ?? .crossEntropy
    stepper.loss = objective
    if objective == .weightedCrossEntropy {
        stepper.classWeights = balancedClassWeights(fold.train.lazy.flatMap { dataset.labels[($0 * dataset.patchPixels)..<(($0 + 1) * dataset.patchPixels)] },
                                                    classes: settings.architecture.classes)
    }
    let trainingSamples = expandSamples(fold.train, dihedral: settings.dihedral, shuffleSeed: 9201)
    let validationSamples = expandSamples(fold.validation, dihedral: settings.dihedral, shuffleSeed: 6274)

    try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
    let files = TrainingFiles(folder: output)
    let identity = try CheckpointIdentity(settings: settings, dataset: dataset.versionID, fold: foldIndex)
    var state = try files.resume(identity, network: network, optimizer: &stepper.optimizer)
        ?? TrainingState(best: network.stateTensors())

    let batches = (trainingSamples.count + settings.batchSize - 1) / settings.batchSize
    var epochDurations: [Double] = []
    if state.nextEpoch <= settings.epochs {
        for epoch in state.nextEpoch...settings.epochs {
            let epochStart = Date()
            let epochRandom = SplitMix64(seed: seed).derived(UInt64(epoch))
            var order = trainingSamples
            var shuffler = epochRandom.derived(0)
            order.shuffle(using: &shuffler)
            var lossSum = 0.0, diceSum = 0.0, seen = 0
            for batch in 0..<batches {
                let start = batch * settings.batchSize, end = min(order.count, start + settings.batchSize)
                let augmentation = epochRandom.derived(1)
                let (input, labels) = makeBatch(dataset, order[start..<end], rotate: settings.rotate, noise: settings.noise,
                                                generator: { augmentation.derived(UInt64(start + $0)) }, compute: compute)
                let (loss, logits) = stepper.step(input: input, labels: labels)
                lossSum += loss * Double(end - start)
                diceSum += diceScores(logits: logits, labels: labels).hard.reduce(0, +)
                seen += end - start
                progress?(TrainingProgress(epoch: epoch, epochs: settings.epochs, batch: batch + 1, batches: batches,
                                           trainingLoss: lossSum / Double(seen), trainingDice: diceSum / Double(seen),
                                           validation: nil, secondsThisEpoch: Date().timeIntervalSince(epochStart),
                                           secondsPerEpoch: epochDurations.last, estimatedSecondsLeft: nil, epochFinished: false))
            }
            // Validation noise is fixed per sample (seeded from the run, not the epoch) so every
            // epoch is judged on the same inputs.
            // The kept epoch is the one with the lowest validation value of the training objective
            // (the study's cross-entropy unless --loss says otherwise), averaged over batches.
            var objectiveSum = 0.0
            let metrics = evaluateSamples(network: network, dataset: dataset, samples: validationSamples,
                                          batchSize: settings.batchSize, noise: settings.noise,
                                          seed: seed ^ 0xFA11_FA11) { logits, labels in
                guard objective != .crossEntropy else { return }
                objectiveSum += Double(logits.n) * labels.withUnsafeBufferPointer {
                    trainingLoss(objective, logits: logits, labels: $0, classWeights: stepper.classWeights, compute: compute)
                }
            }
            let selection = objective == .crossEntropy ? metrics.loss : objectiveSum / Double(validationSamples.count)
            if selection < state.bestLoss {
                state.bestLoss = selection
                state.bestEpoch = epoch
                state.best = network.stateTensors()
                state.bestValidation = metrics
            }
            let seconds = Date().timeIntervalSince(epochStart)
            epochDurations.append(seconds)
            state.log.append(.measured(EpochRecord(epoch: epoch, trainingLoss: lossSum / Double(seen), trainingDice: diceSum / Double(seen),
                                         validation: metrics, seconds: seconds)))
            state.nextEpoch = epoch + 1
            try files.writeLog(state.log)
            try files.writeCheckpoint(identity, state: state, network: network, optimizer: stepper.optimizer)
            let mean = epochDurations.reduce(0, +) / Double(epochDurations.count)
            progress?(TrainingProgress(epoch: epoch, epochs: settings.epochs, batch: batches, batches: batches,
                                       trainingLoss: lossSum / Double(seen), trainingDice: diceSum / Double(seen),
                                       validation: metrics, secondsThisEpoch: seconds, secondsPerEpoch: mean,
                                       estimatedSecondsLeft: mean * Double(settings.epochs - epoch), epochFinished: true))
        }
    }

    let kept = ResidualUNet(architecture: settings.architecture, seed: 0, compute: compute)
    try kept.loadState(state.best, file: files.checkpoint.path)
    var card = ModelCard(architecture: settings.architecture, parameters: kept.parameterCount,
                         datasetVersion: dataset.versionID, datasetFolder: dataset.folder.path, fold: foldIndex, seed: seed,
                         configuration: settings, epochs: settings.epochs, bestEpoch: state.bestEpoch,
                         bestValidationLoss: state.bestLoss, validation: state.bestValidation,
                         trainingSeconds: Date().timeIntervalSince(started))
    card.collapse = state.bestValidation.flatMap(Collapse.check)
    try kept.save(to: files.weights, metadata: ["dataset": dataset.versionID, "fold": String(foldIndex), "best_epoch": String(state.bestEpoch)])
    try card.write(to: output)
    return TrainedModel(network: kept, card: card, folder: output)
}

/// One finished epoch: a row of `training.csv`.
struct EpochRecord {
    var epoch: Int
    var trainingLoss: Double
    var trainingDice: Double
    var validation: Metrics
    var seconds: Double

    static let header = "epoch,train_loss,train_hard_dice,validation_loss,validation_hard_dice,validation_soft_dice,seconds"

    var line: String {
        [String(epoch), format(trainingLoss), format(trainingDice), format(validation.loss), format(validation.hardDice),
         format(validation.softDice), String(format: "%.3f", seconds)].joined(separator: ",")
    }
}

/// Where a run stands after its last finished epoch: what a checkpoint holds besides the weights
/// and the optimizer.
struct TrainingState {
    var nextEpoch = 1
    var bestLoss = Double.infinity
    var bestEpoch = 0
    /// The weights of the best epoch so far.
    var best: [SafetensorsTensor]
    var bestValidation: Metrics?
    /// Rows of training.csv kept from earlier epochs (as text: a resumed run keeps them byte for byte).
    var log: [EpochLine] = []

    init(best: [SafetensorsTensor]) { self.best = best }
}

/// A row of training.csv: freshly measured, or read back from an interrupted run's file.
enum EpochLine {
    case measured(EpochRecord)
    case kept(String)

    var text: String {
        switch self {
        case .measured(let record): record.line
        case .kept(let line): line
        }
    }
}

/// What a checkpoint must match to be continued: the settings (all but the epoch count, which
/// a resumed run may raise), the dataset version and the fold.
struct CheckpointIdentity {
    var settingsText: String
    var dataset: String
    var fold: Int

    init(settings: TrainingSettings, dataset: String, fold: Int) throws {
        var resumable = settings
        resumable.epochs = 0
        settingsText = try CanonicalJSON.compactString(resumable)
        self.dataset = dataset
        self.fold = fold
    }
}

/// The files of a training run's output folder.
struct TrainingFiles {
    let folder: URL
    var checkpoint: URL { folder.appendingPathComponent("checkpoint.safetensors") }
    var weights: URL { folder.appendingPathComponent(ModelCard.weightsFileName) }
    var log: URL { folder.appendingPathComponent("training.csv") }

    func writeLog(_ lines: [EpochLine]) throws {
        let text = EpochRecord.header + "\n" + lines.map { $0.text + "\n" }.joined()
        try writeFileAtomically(Data(text.utf8), to: log)
    }

    /// The checkpoint holds the last finished epoch's weights and optimizer state and the best
    /// weights so far (prefix `best.`); the per-epoch randomness is derived from (seed, epoch),
    /// so continuing reproduces the same run.
    func writeCheckpoint(_ identity: CheckpointIdentity, state: TrainingState, network: ResidualUNet, optimizer: Adam) throws {
        var metadata = ["configuration": identity.settingsText, "dataset": identity.dataset, "fold": String(identity.fold),
                        "epoch": String(state.nextEpoch - 1), "adam_step": String(optimizer.step),
                        "best_loss": "\(state.bestLoss)", "best_epoch": String(state.bestEpoch)]
        if let validation = state.bestValidation {
            metadata["best_validation"] = try CanonicalJSON.compactString(validation)
        }
        let optimizerState = optimizer.stateTensors(network.parameters).map { $0.renamed("optimizer." + $0.name) }
        let best = state.best.map { $0.renamed("best." + $0.name) }
        try writeSafetensors(SafetensorsFile(tensors: network.stateTensors() + optimizerState + best, metadata: metadata),
                             to: checkpoint)
    }

    /// Loads the checkpoint into `network` and `optimizer` and returns the state it records, or
    /// nil when there is none.
    /// - Throws: `ModelError` when the checkpoint belongs to another dataset, fold or settings.
    func resume(_ identity: CheckpointIdentity, network: ResidualUNet, optimizer: inout Adam) throws -> TrainingState? {
        guard FileManager.default.fileExists(atPath: checkpoint.path) else { return nil }
        let file = try readSafetensors(from: checkpoint)
        guard file.metadata["configuration"] == identity.settingsText, file.metadata["dataset"] == identity.dataset,
              file.metadata["fold"] == String(identity.fold) else {
            throw ModelError(file: checkpoint.path, "checkpoint was made with another dataset, fold or configuration; remove the folder or choose another output")
        }
        func tensors(prefixed prefix: String) -> [SafetensorsTensor] {
            file.tensors.filter { $0.name.hasPrefix(prefix) }.map { $0.renamed(String($0.name.dropFirst(prefix.count))) }
        }
        try network.loadState(file.tensors.filter { !$0.name.hasPrefix("optimizer.") && !$0.name.hasPrefix("best.") },
                              file: checkpoint.path)
        try optimizer.loadState(tensors(prefixed: "optimizer."), into: network.parameters, file: checkpoint.path)
        optimizer.step = Int(file.metadata["adam_step"] ?? "0") ?? 0
        var state = TrainingState(best: tensors(prefixed: "best."))
        state.nextEpoch = (Int(file.metadata["epoch"] ?? "0") ?? 0) + 1
        state.bestLoss = Double(file.metadata["best_loss"] ?? "") ?? .infinity
        state.bestEpoch = Int(file.metadata["best_epoch"] ?? "0") ?? 0
        if let data = file.metadata["best_validation"]?.data(using: .utf8) {
            state.bestValidation = try? JSONDecoder().decode(Metrics.self, from: data)
        }
        if let text = try? String(contentsOf: log, encoding: .utf8) {
            state.log = text.split(separator: "\n").dropFirst().map(String.init)
                .filter { Int($0.split(separator: ",").first ?? "") ?? Int.max < state.nextEpoch }
                .map(EpochLine.kept)
        }
        return state
    }
}

extension SafetensorsTensor {
    func renamed(_ name: String) -> SafetensorsTensor {
        var copy = self
        copy.name = name
        return copy
    }
}

/// Metrics of `network` on an explicit sample list (validation inside `train`).
func evaluateSamples(network: ResidualUNet, dataset: PatchDataset, samples: [Sample], batchSize: Int,
                     noise: NoiseAugmentation, seed: UInt64, eachBatch: ((Tensor, [UInt8]) -> Void)? = nil) -> Metrics {
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
        eachBatch?(logits, labels)
        start = end
    }
    return accumulator.metrics
}

private func format(_ value: Double) -> String { String(format: "%.6f", value) }
