import ArgumentParser
import Experiments
import Segmentation

/// `matrix --compare-losses`: one training variant per objective, so their cells sit side by
/// side in one report (as a noise sweep's variants do).
struct LossComparisonOptions: ParsableArguments {
    @Option(name: .customLong("compare-losses"),
            help: "Train every fold model once per objective (comma separated: \(TrainingLoss.allCases.map(\.rawValue).joined(separator: ", "))); each is a variant of the matrix, labelled by its name. Replaces --loss.")
    var compareLosses: String?

    func parsed() throws -> [TrainingLoss]? {
        guard let compareLosses else { return nil }
        let names = compareLosses.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var losses: [TrainingLoss] = []
        for name in names {
            guard let loss = TrainingLoss(rawValue: name) else {
                throw ValidationError("--compare-losses: '\(name)' is not a loss; expected \(TrainingLoss.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard !losses.contains(loss) else { throw ValidationError("--compare-losses names \(name) twice") }
            losses.append(loss)
        }
        guard losses.count >= 1 else { throw ValidationError("--compare-losses needs at least one loss") }
        return losses
    }

    func check() throws { _ = try parsed() }

    /// One variant per loss, or nil without --compare-losses.
    func variants(_ training: TrainingOptions, _ foldModels: FoldModelOptions) throws -> [TrainingVariant]? {
        try parsed()?.map { loss in
            var settings = training.settings(defaultThreads: 1)
            settings.loss = loss == .crossEntropy ? nil : loss
            return TrainingVariant(label: loss.rawValue, settings: settings, baseSeed: foldModels.seed)
        }
    }
}
