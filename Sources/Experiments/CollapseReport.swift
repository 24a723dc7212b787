import Foundation
import Segmentation

/// What the matrix report says about collapsed fold models (`ModelCard.collapse`) and the
/// validation curve of every fold model, so a dead start is never averaged in silently.
enum CollapseReport {
    /// Collapsed models with the cells they are left out of, or nil when none collapsed.
    static func collapsedModels(_ results: MatrixResults) -> [(unit: TrainUnit, model: ModelRef)] {
        results.plan.trainUnits.compactMap { unit in
            guard let model = results.models[unit.id], model.card.collapse != nil else { return nil }
            return (unit, model)
        }
    }

    /// The banner at the top of the HTML report.
    static func warning(_ results: MatrixResults) -> String {
        let collapsed = collapsedModels(results)
        guard !collapsed.isEmpty else { return "" }
        var out = "<p class=\"warning\">\(collapsed.count) fold model(s) collapsed and are left out of every cell's mean and spread (the cells say which folds):</p>\n<ul>\n"
        for (unit, model) in collapsed {
            out += "<li>\(escapeMarkup(unit.dataset.name)) fold \(unit.fold), seed \(model.card.seed): \(escapeMarkup(model.card.collapse?.reason ?? ""))</li>\n"
        }
        return out + "</ul>\n"
    }

    /// The cell table's last column.
    static func cellNote(_ cell: CellResult) -> String {
        guard let folds = cell.collapsedFolds else { return "" }
        let all = folds.count == cell.folds.count ? " (every model: no score)" : ""
        return "folds " + folds.map(String.init).joined(separator: ", ") + all
    }

    /// The footnote under the text table.
    static func textNote(_ results: MatrixResults) -> String {
        let collapsed = collapsedModels(results)
        guard !collapsed.isEmpty else { return "" }
        return "† a fold model collapsed and is left out of the cell: "
            + collapsed.map { "\($0.unit.dataset.name) fold \($0.unit.fold) (seed \($0.model.card.seed))" }.joined(separator: ", ") + "\n"
    }

    /// One epoch of a model's `training.csv`.
    struct EpochPoint {
        var epoch: Int
        var validationLoss: Double
        var validationHardDice: Double
    }

    /// The validation curve in a model folder's `training.csv` (empty when the file is absent or
    /// not in the trainer's layout).
    static func curve(_ csv: URL) -> [EpochPoint] {
        guard let text = try? String(contentsOf: csv, encoding: .utf8) else { return [] }
        let lines = text.split(separator: "\n")
        guard let header = lines.first?.split(separator: ",").map(String.init),
              let epochColumn = header.firstIndex(of: "epoch"), let lossColumn = header.firstIndex(of: "validation_loss"),
              let diceColumn = header.firstIndex(of: "validation_hard_dice") else { return [] }
        return lines.dropFirst().compactMap { line in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == header.count, let epoch = Int(fields[epochColumn]), let loss = Double(fields[lossColumn]),
                  let dice = Double(fields[diceColumn]) else { return nil }
            return EpochPoint(epoch: epoch, validationLoss: loss, validationHardDice: dice)
        }
    }

    /// A small line chart of validation hard Dice (and loss, dashed, on its own scale) by epoch.
    static func sparkline(_ points: [EpochPoint]) -> String {
        guard points.count > 1 else { return "" }
        let width = 220.0, height = 40.0
        let largestLoss = max(points.map(\.validationLoss).max() ?? 1, 1e-9)
        func path(_ value: (EpochPoint) -> Double) -> String {
            points.enumerated().map { index, point in
                let x = Double(index) / Double(points.count - 1) * width
                return String(format: "%.1f,%.1f", x, height - min(max(value(point), 0), 1) * height)
            }.joined(separator: " ")
        }
        return "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\">"
            + "<polyline fill=\"none\" stroke=\"#2166ac\" stroke-width=\"1.5\" points=\"\(path { $0.validationHardDice })\"/>"
            + "<polyline fill=\"none\" stroke=\"#999\" stroke-dasharray=\"3,2\" points=\"\(path { $0.validationLoss / largestLoss })\"/></svg>"
    }

    /// Every fold model's validation curve, seeds tried and verdict.
    static func curvesSection(_ results: MatrixResults) -> String {
        var out = "<h2>Validation curves</h2>\n<p class=\"note\">Per fold model and epoch: validation hard Dice (solid, 0 to 1) and validation loss (dashed, scaled to its largest value). A collapsed model predicts one class everywhere or keeps a validation hard Dice near zero; it is left out of the cells.</p>\n"
        out += "<table>\n<tr><th>trained on</th><th>variant</th><th>fold</th><th>seeds tried</th><th>verdict</th><th>curve</th><th>validation hard Dice by epoch</th></tr>\n"
        for unit in results.plan.trainUnits {
            guard let model = results.models[unit.id] else { continue }
            let points = curve(URL(fileURLWithPath: model.folder).appendingPathComponent("training.csv"))
            let tried = (model.card.collapsedAttempts ?? []).map { "\($0.seed) (collapsed)" } + ["\(model.card.seed)"]
            out += "<tr><td>\(escapeMarkup(unit.dataset.name))</td><td>\(escapeMarkup(results.plan.variants[unit.variantIndex].label))</td>"
            out += "<td class=\"num\">\(unit.fold)</td><td>\(escapeMarkup(tried.joined(separator: ", ")))</td>"
            out += "<td>\(escapeMarkup(model.card.collapse.map { "collapsed: \($0.reason)" } ?? "learned"))</td>"
            out += "<td>\(sparkline(points))</td>"
            out += "<td class=\"num\">\(points.map { String(format: "%.3f", $0.validationHardDice) }.joined(separator: " "))</td></tr>\n"
        }
        return out + "</table>\n"
    }
}
