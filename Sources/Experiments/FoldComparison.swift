import Foundation

/// The diagonal of one matrix per fold rule on the same datasets: how much of a dataset's own
/// score comes from patches of one frame (or session) sitting on both sides of a split.
/// `rules[0]` is the reference the changes are measured against.
public struct FoldComparison: Sendable {
    /// Fold-rule names (`study`, `frame`, `session`), in the order the matrices ran.
    public var rules: [String]
    /// Dataset names (the recipe's name under the reference rule), in plan order.
    public var datasets: [String]
    /// `diagonal[rule][dataset]`: mean hard Dice of the dataset's fold models on their own test
    /// folds, nil when the cell has no score (pending, or every model collapsed).
    public var diagonal: [[Double?]]

    /// - Parameter results: per rule, the matrix results; each plan's rows in the same dataset order.
    public init(rules: [String], datasets: [String], results: [MatrixResults]) {
        self.rules = rules
        self.datasets = datasets
        diagonal = results.map { result in
            result.plan.rows.map { id in result.cell(train: id, test: id)?.hardDice?.mean }
        }
    }

    /// One line per dataset and rule: `dataset,rule,hard_dice_mean,change_vs_<reference>`.
    public var csv: String {
        var text = csvLine(["dataset", "rule", "hard_dice_mean", "change_vs_\(rules.first ?? "")"])
        for (index, dataset) in datasets.enumerated() {
            for (ruleIndex, rule) in rules.enumerated() {
                let value = diagonal[ruleIndex][index]
                let change = value.flatMap { value in diagonal[0][index].map { value - $0 } }
                text += csvLine([dataset, rule, csvNumber(value), csvNumber(change)])
            }
        }
        return text
    }

    /// The table people read: the reference rule's diagonal, then each other rule's with its change.
    public var textTable: String {
        let rows = datasets.enumerated().map { index, dataset -> [String] in
            [dataset] + rules.indices.map { ruleIndex in
                guard let value = diagonal[ruleIndex][index] else { return "no score" }
                guard ruleIndex > 0, let reference = diagonal[0][index] else { return fixed(value) }
                return fixed(value) + " (" + (value - reference >= 0 ? "+" : "") + fixed(value - reference) + ")"
            }
        }
        let header = ["own test fold, hard Dice"] + rules.map { "by \($0)" }
        let widths = header.indices.map { column in ([header[column]] + rows.map { $0[column] }).map(\.count).max() ?? 0 }
        func line(_ fields: [String]) -> String {
            zip(fields, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ") + "\n"
        }
        return line(header) + rows.map(line).joined()
    }
}
