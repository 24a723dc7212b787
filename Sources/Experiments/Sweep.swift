import Foundation
import Segmentation

/// The study's Fig. 5: train on one dataset with Gaussian-noise augmentation at several levels,
/// test on others. A sweep is a matrix plan with one row dataset and one training variant per
/// noise level, so the runner, the store, Slurm and the reports are the matrix's.
public enum NoiseSweep {
    /// How rho is applied to each training sample.
    public enum Mode: String, Codable, Sendable {
        /// x' = (x + N(0, rho^2)) / sqrt(1 + rho^2) with the given rho.
        case fixed
        /// rho ~ U(0, value) drawn per sample.
        case uniformUpTo = "uniform"
    }

    /// Plans the sweep. A level of 0 trains without noise.
    /// - Throws: `ExperimentError` for no levels, a repeated or negative level, or a bad plan.
    public static func plan(name: String, train: DatasetVersionRef, test: [DatasetVersionRef], levels: [Double],
                            mode: Mode, base: TrainingSettings, baseSeed: UInt64? = nil, folds: Int, executor: ExecutorKind = .trainer,
                            commandLine: [String] = []) throws -> MatrixPlan {
        guard !levels.isEmpty else { throw ExperimentError("no noise level given") }
        guard Set(levels).count == levels.count else { throw ExperimentError("a noise level is repeated in \(levels)") }
        let variants: [TrainingVariant] = try levels.map { rho in
            guard rho >= 0, rho.isFinite else { throw ExperimentError("must be a finite number >= 0, got \(rho)", subject: "noise level") }
            var settings = base
            settings.noise = rho == 0 ? .none : mode == .fixed ? .fixed(rho) : .uniform(rho)
            let label = mode == .fixed ? "rho=\(rho)" : "rho~U(0,\(rho))"
            return TrainingVariant(label: label, settings: settings, baseSeed: baseSeed, sweepValue: rho)
        }
        return try MatrixPlan(kind: .noiseSweep, name: name, trainOn: [train], testOn: test, folds: folds,
                              variants: variants, executor: executor, commandLine: commandLine)
    }

    /// Parses `0,0.25,0.5` into levels.
    /// - Throws: `ExperimentError` naming the item that is not a number.
    public static func parseLevels(_ text: String) throws -> [Double] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { item in
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            guard let value = Double(trimmed), value.isFinite else {
                throw ExperimentError("\"\(trimmed)\" in \"\(text)\" is not a number", subject: "noise level")
            }
            return value
        }
    }
}

/// The sweep's own outputs: a CSV (one line per level and test dataset) and a line plot.
public enum SweepReport {
    public static let csvHeader = ["rho", "mode", "tested_on", "tested_on_version", "scope", "models",
                                   "hard_dice_mean", "hard_dice_std", "soft_dice_mean", "soft_dice_std",
                                   "fp_rate_mean", "fn_rate_mean"]

    public static func csv(_ results: MatrixResults) -> String {
        let plan = results.plan
        var text = csvLine(csvHeader)
        for cell in results.cells {
            let variant = plan.variants[cell.variantIndex]
            let mode = variant.settings.noise.drawsRhoPerSample ? "uniform" : "fixed"
            text += csvLine([csvNumber(variant.sweepValue), mode, MatrixReport.name(plan, cell.testDatasetID),
                             cell.testDatasetID, cell.scope, String(cell.folds.count),
                             csvNumber(cell.hardDice?.mean), csvNumber(cell.hardDice?.std),
                             csvNumber(cell.softDice?.mean), csvNumber(cell.softDice?.std),
                             csvNumber(cell.falsePositiveRate?.mean), csvNumber(cell.falseNegativeRate?.mean)])
        }
        return text
    }

    static let lineColours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]

    /// Hard Dice (mean, error bars: population std) against rho, one line per test dataset.
    public static func lineSVG(_ results: MatrixResults) -> String {
        let plan = results.plan
        let levels = plan.variants.map { $0.sweepValue ?? 0 }
        let low = levels.min() ?? 0
        let high = max(levels.max() ?? 1, low + 1e-9)
        let width = 640.0, height = 400.0
        let left = 64.0, right = 190.0, top = 48.0, bottom = 56.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        func x(_ rho: Double) -> Double { left + plotWidth * (rho - low) / (high - low) }
        func y(_ dice: Double) -> Double { top + plotHeight * (1 - min(1, max(0, dice))) }
        let trainName = plan.rows.first.map { MatrixReport.name(plan, $0) } ?? ""
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(coordinate(width))\" height=\"\(coordinate(height))\" viewBox=\"0 0 \(coordinate(width)) \(coordinate(height))\" font-family=\"Helvetica, Arial, sans-serif\" role=\"img\">\n"
        let title = "Hard Dice against noise level, trained on \(trainName)"
        svg += "<title>\(escapeMarkup(title))</title>\n"
        svg += "<rect x=\"0\" y=\"0\" width=\"\(coordinate(width))\" height=\"\(coordinate(height))\" fill=\"#ffffff\"/>\n"
        svg += MatrixReport.text(12, 22, title, size: 15, bold: true)
        for step in 0...4 {
            let value = Double(step) / 4
            svg += "<line x1=\"\(coordinate(left))\" y1=\"\(coordinate(y(value)))\" x2=\"\(coordinate(left + plotWidth))\" y2=\"\(coordinate(y(value)))\" stroke=\"#e5e5e5\"/>\n"
            svg += MatrixReport.text(left - 6, y(value) + 4, fixed(value, 2), size: 10, anchor: "end")
        }
        for level in levels.sorted() {
            svg += "<line x1=\"\(coordinate(x(level)))\" y1=\"\(coordinate(top + plotHeight))\" x2=\"\(coordinate(x(level)))\" y2=\"\(coordinate(top + plotHeight + 5))\" stroke=\"#444444\"/>\n"
            svg += MatrixReport.text(x(level), top + plotHeight + 18, "\(level)", size: 10, anchor: "middle")
        }
        svg += "<rect x=\"\(coordinate(left))\" y=\"\(coordinate(top))\" width=\"\(coordinate(plotWidth))\" height=\"\(coordinate(plotHeight))\" fill=\"none\" stroke=\"#444444\"/>\n"
        let uniform = plan.variants.contains { $0.settings.noise.drawsRhoPerSample }
        svg += MatrixReport.text(left + plotWidth / 2, height - 14, uniform ? "rho_max (rho ~ U(0, rho_max) per sample)" : "rho (noise std in units of the image std)", size: 12, anchor: "middle")
        svg += "<text x=\"16\" y=\"\(coordinate(top + plotHeight / 2))\" font-size=\"12\" fill=\"#222222\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(coordinate(top + plotHeight / 2)))\">hard Dice (mean ± std)</text>\n"
        for (index, column) in plan.columns.enumerated() {
            let colour = lineColours[index % lineColours.count]
            let points: [(Double, Summary)] = plan.variants.indices.compactMap { variantIndex in
                guard let row = plan.rows.first,
                      let dice = results.cell(train: row, test: column, variant: variantIndex)?.hardDice else { return nil }
                return (plan.variants[variantIndex].sweepValue ?? 0, dice)
            }.sorted { $0.0 < $1.0 }
            if points.count > 1 {
                svg += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(points.map { "\(coordinate(x($0.0))),\(coordinate(y($0.1.mean)))" }.joined(separator: " "))\"/>\n"
            }
            for (rho, dice) in points {
                svg += "<line x1=\"\(coordinate(x(rho)))\" y1=\"\(coordinate(y(dice.mean - dice.std)))\" x2=\"\(coordinate(x(rho)))\" y2=\"\(coordinate(y(dice.mean + dice.std)))\" stroke=\"\(colour)\"/>\n"
                svg += "<circle cx=\"\(coordinate(x(rho)))\" cy=\"\(coordinate(y(dice.mean)))\" r=\"3.5\" fill=\"\(colour)\"><title>\(escapeMarkup("rho \(rho): \(fixed(dice.mean, 4)) ± \(fixed(dice.std, 4))"))</title></circle>\n"
            }
            let legendY = top + 10 + Double(index) * 20
            svg += "<line x1=\"\(coordinate(left + plotWidth + 14))\" y1=\"\(coordinate(legendY))\" x2=\"\(coordinate(left + plotWidth + 34))\" y2=\"\(coordinate(legendY))\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            let label = "tested on " + MatrixReport.name(plan, column) + (column == plan.rows.first ? " (own fold)" : "")
            svg += MatrixReport.text(left + plotWidth + 40, legendY + 4, label, size: 11)
        }
        svg += "</svg>\n"
        return svg
    }
}
