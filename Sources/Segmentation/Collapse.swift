import Foundation
import Micrograph

/// Why a trained model is not a result: it predicts one class everywhere, or its validation
/// hard Dice is near zero although the validation labels have particles. Such a model can still
/// have the lowest validation loss of a run (cross-entropy rewards soft probabilities that rank
/// pixels well even when none crosses 0.5), so "keep the lowest validation loss" keeps it; the
/// trainer checks every model it writes and marks it in its card.
public struct Collapse: Codable, Hashable, Sendable {
    /// What was seen, in words (`every validation pixel predicted substrate`, ...).
    public var reason: String

    public init(reason: String) { self.reason = reason }

    /// Validation hard Dice at or below this (with particles in the labels) is a collapse: a model
    /// that marks nothing scores about 1 / (particle pixels + 1) per patch.
    public static let diceThreshold = 0.05

    /// The verdict on validation metrics, or nil for a model that learned something.
    public static func check(_ validation: Metrics) -> Collapse? {
        // A false-negative rate is only defined (non-zero) where the labels have particles.
        if validation.falseNegativeRate >= 0.999 && validation.falsePositiveRate <= 0.001 {
            return Collapse(reason: String(format: "constant prediction: every validation pixel predicted substrate (false-negative rate %.4f, hard Dice %.4f)",
                                           validation.falseNegativeRate, validation.hardDice))
        }
        if validation.falsePositiveRate >= 0.999 && validation.falseNegativeRate <= 0.001 {
            return Collapse(reason: String(format: "constant prediction: every validation pixel predicted particle (false-positive rate %.4f)",
                                           validation.falsePositiveRate))
        }
        // Dice with smoothing 1 is near zero only where a patch has particles (or false
        // positives): an empty label predicted empty scores 1.
        if validation.hardDice <= diceThreshold {
            return Collapse(reason: String(format: "validation hard Dice %.4f is at most %.2f while the labels have particles",
                                           validation.hardDice, diceThreshold))
        }
        return nil
    }
}

/// A training attempt that collapsed and was replaced by one with the next seed
/// (`TrainingSettings.collapseRetries`); its files are kept in `collapsed-seed-<seed>/`.
public struct CollapsedAttempt: Codable, Hashable, Sendable {
    public init(seed: UInt64, collapse: Collapse, bestEpoch: Int, validation: Metrics?, folder: String) {
        self.seed = seed
        self.collapse = collapse
        self.bestEpoch = bestEpoch
        self.validation = validation
        self.folder = folder
    }

    public var seed: UInt64
    public var collapse: Collapse
    public var bestEpoch: Int
    public var validation: Metrics?
    /// The attempt's folder, relative to the model folder.
    public var folder: String
}

/// The seeds a run tries in order: the first one, then (when it collapses and retries are allowed)
/// one derived from it per retry. The sequence depends only on the first seed, so the plan, the
/// card and a rerun agree on it.
public func collapseRetrySeeds(first: UInt64, retries: Int) -> [UInt64] {
    [first] + (0..<max(0, retries)).map { retry in
        var generator = SplitMix64(seed: first).derived(UInt64(retry + 1))
        return generator.next() % 1_000_000
    }
}

extension CollapsedAttempt {
    /// Where a collapsed attempt's files are kept inside the model folder.
    public static func folderName(seed: UInt64) -> String { "collapsed-seed-\(seed)" }
}

extension ResidualUNet {
    /// A dead start for tests and debugging: the final layer's bias at +500 for substrate and
    /// -500 for particle, so every pixel starts predicted substrate with a margin of 1000. Adam
    /// moves each parameter by about the learning rate a step, so neither the bias nor the
    /// features feeding the head can close it in a short run, even at a learning rate of 1e-2.
    public func saturateBackground() {
        guard finalConv.bias.value.count >= 2 else { return }
        finalConv.bias.value[0] = 500
        for channel in 1..<finalConv.bias.value.count { finalConv.bias.value[channel] = -500 }
    }
}
