import ArgumentParser
import Experiments
import Foundation
import Segmentation

/// Encoder channel widths, shallowest first: `4,8,16,32`.
struct ChannelWidths: ExpressibleByArgument, Sendable {
    var values: [Int]

    init?(argument: String) {
        let values = argument.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        self.values = values.map { $0! }
    }

    init(_ values: [Int]) { self.values = values }

    var defaultValueDescription: String { values.map(String.init).joined(separator: ",") }
}

/// Seeds, comma separated: `962,1662`.
struct SeedList: ExpressibleByArgument, Sendable {
    var values: [UInt64]

    init?(argument: String) {
        let values = argument.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { return nil }
        self.values = values.map { $0! }
    }
}

/// What the trainer does with a model that collapsed (constant prediction, or validation hard
/// Dice near zero while the labels have particles).
enum CollapsePolicy: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Keep it, marked collapsed in its card, the catalog and the matrix (left out of cells).
    case report
    /// Retrain with the next seed of the recorded sequence, up to --collapse-retries times.
    case retry
}

/// How one fold model is trained, as `train`, `matrix` and `sweep` take it; the seed is each
/// command's own (a fold model's seed for `train`, a run's base seed for `matrix`).
struct TrainingOptions: ParsableArguments {
    @Option(help: "Training epochs per fold model.") var epochs: Int = 250
    @Option(help: "Batch size.") var batch: Int = 32
    @Option(name: .customLong("lr"), help: "Adam learning rate.") var learningRate: Double = 1e-4
    @Option(help: "Fixed Gaussian-noise augmentation rho (units of the image std).") var noise: Double?
    @Option(name: .customLong("noise-max"), help: "Noise augmentation with rho ~ U(0, this) per sample.") var noiseMax: Double?
    @Flag(inversion: .prefixedNo, help: "Online flip + rotation augmentation of training samples.") var rotate = true
    @Flag(inversion: .prefixedNo, help: "Dihedral x8 expansion of every set.") var dihedral = true
    @Option(help: "Threads per fold model (default: 2 for train, 1 per unit for matrix and sweep).") var threads: Int?
    @Option(help: "Encoder widths, comma separated.") var widths = ChannelWidths([4, 8, 16, 32])
    @Option(help: "Bottleneck width.") var bottleneck = 64
    @Option(help: "Training objective: \(TrainingLoss.allCases.map(\.rawValue).joined(separator: ", ")) (the study's: cross-entropy).")
    var loss: TrainingLoss = .crossEntropy
    @Option(name: .customLong("on-collapse"),
            help: "A collapsed model (one class everywhere, or validation hard Dice near zero): report (keep it, marked and left out of matrix cells) or retry (train again from the next seed).")
    var onCollapse: CollapsePolicy = .report
    @Option(name: .customLong("collapse-retries"), help: "Seeds to try after a collapse with --on-collapse retry (0-10).")
    var collapseRetries = 3
    @Option(name: .customLong("debug-dead-start-seeds"),
            help: "Testing only: runs starting from these seeds (comma separated) begin dead, the final bias saturating substrate.")
    var deadStartSeeds: SeedList?

    /// The settings these options give, with `defaultThreads` when `--threads` is not given.
    func settings(seed: UInt64? = nil, defaultThreads: Int) -> TrainingSettings {
        TrainingSettings(architecture: UNetArchitecture(widths: widths.values, bottleneckWidth: bottleneck),
                         epochs: epochs, batchSize: batch, learningRate: learningRate, seed: seed,
                         noise: noise.map { .fixed($0) } ?? noiseMax.map { .uniform($0) } ?? NoiseAugmentation.none,
                         rotate: rotate, dihedral: dihedral, threads: threads ?? defaultThreads,
                         collapseRetries: onCollapse == .retry ? collapseRetries : nil, deadStartSeeds: deadStartSeeds?.values,
                         loss: loss)
    }

    func check() throws {
        if noise != nil && noiseMax != nil { throw ValidationError("give --noise or --noise-max, not both") }
        do { try settings(defaultThreads: 1).validate() } catch { throw ValidationError("\(error)") }
    }
}

extension ExecutorKind: ExpressibleByArgument {}
extension TrainingLoss: ExpressibleByArgument {}
