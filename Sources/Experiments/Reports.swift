import Foundation
import Micrograph

/// A matrix row: one trained-on dataset under one training variant.
struct MatrixRow {
    var datasetID: String
    var variantIndex: Int
    var dataset: DatasetVersionRef
    var variantLabel: String?
}

/// A cell as `matrix.json` holds it: the aggregate plus names people read.
public struct ReportCell: Codable, Hashable, Sendable {
    public var trainedOn: String
    public var trainedOnVersion: String
    public var testedOn: String
    public var testedOnVersion: String
    public var variant: String
    public var scope: String
    public var complete: Bool
    public var models: Int
    public var hardDice: Summary?
    public var softDice: Summary?
    public var loss: Summary?
    public var falsePositiveRate: Summary?
    public var falseNegativeRate: Summary?
    public var folds: [FoldResult]
    /// Folds whose model collapsed, left out of the summaries (see `CellResult.collapsedFolds`).
    public var collapsedFolds: [Int]?
}

/// The whole of `matrix.json`.
public struct ReportDocument: Codable, Hashable, Sendable {
    public var name: String
    public var kind: ExperimentKind
    public var planID: String
    public var executor: ExecutorKind
    public var hrtemVersion: String
    /// What "mean" and "std" mean here.
    public var statistics: String
    public var folds: Int
    public var complete: Bool
    public var datasets: [DatasetVersionRef]
    public var rows: [String]
    public var columns: [String]
    public var variants: [TrainingVariant]
    public var cells: [ReportCell]
    public var models: [ModelRef]
    public var commandLine: [String]
}

/// Writes the files of a matrix report and builds each of them as text.
///
/// Folder layout: `matrix.csv`, `matrix.json`, `heatmap.svg`, `segmentation-bias.svg`,
/// `cells/<trained on>__on__<tested on>.csv` (the study's columns: fold, test_loss, test_dice,
/// test_hard_dice), `report.html` (self-contained: inline SVG and images, no network).
/// For a noise sweep also `sweep.csv` and `sweep.svg` (see `SweepReport`).
/// Every file is written atomically; the same results give the same bytes.
public enum MatrixReport {
    /// Writes every report file into `folder` (created if needed) and returns their URLs.
    /// - Parameters:
    ///   - planFile: where the plan lies, for the "how to reproduce" commands.
    /// - Throws: `FormatError` naming a file that could not be written.
    @discardableResult
    public static func write(_ results: MatrixResults, to folder: URL, planFile: URL? = nil) throws -> [URL] {
        var written: [URL] = []
        func put(_ text: String, _ name: String) throws {
            let url = folder.appendingPathComponent(name)
            try writeFileAtomically(Data(text.utf8), to: url)
            written.append(url)
        }
        try put(csv(results), "matrix.csv")
        try writeFileAtomically(try CanonicalJSON.file(document(results)), to: folder.appendingPathComponent("matrix.json"))
        written.append(folder.appendingPathComponent("matrix.json"))
        for (name, text) in cellCSVs(results) { try put(text, "cells/\(name)") }
        try put(heatmapSVG(results), "heatmap.svg")
        try put(biasSVG(results), "segmentation-bias.svg")
        if results.plan.kind == .noiseSweep {
            try put(SweepReport.csv(results), "sweep.csv")
            try put(SweepReport.lineSVG(results), "sweep.svg")
        }
        try put(html(results, planFile: planFile), "report.html")
        return written
    }

    static func rows(_ plan: MatrixPlan) -> [MatrixRow] {
        var rows: [MatrixRow] = []
        for id in plan.rows {
            guard let dataset = plan.dataset(id: id) else { continue }
            for (index, variant) in plan.variants.enumerated() {
                rows.append(MatrixRow(datasetID: id, variantIndex: index, dataset: dataset,
                                      variantLabel: plan.variants.count > 1 ? variant.label : nil))
            }
        }
        return rows
    }

    static func columns(_ plan: MatrixPlan) -> [DatasetVersionRef] { plan.columns.compactMap { plan.dataset(id: $0) } }

    static func name(_ plan: MatrixPlan, _ id: String) -> String { plan.dataset(id: id)?.name ?? id }

    // MARK: JSON

    public static func document(_ results: MatrixResults) -> ReportDocument {
        let plan = results.plan
        let cells = results.cells.map { cell in
            ReportCell(trainedOn: name(plan, cell.trainDatasetID), trainedOnVersion: cell.trainDatasetID,
                       testedOn: name(plan, cell.testDatasetID), testedOnVersion: cell.testDatasetID,
                       variant: plan.variants[cell.variantIndex].label, scope: cell.scope, complete: cell.isComplete,
                       models: cell.folds.count, hardDice: cell.hardDice, softDice: cell.softDice, loss: cell.loss,
                       falsePositiveRate: cell.falsePositiveRate, falseNegativeRate: cell.falseNegativeRate,
                       folds: cell.folds, collapsedFolds: cell.collapsedFolds)
        }
        return ReportDocument(
            name: plan.name, kind: plan.kind, planID: plan.id, executor: plan.executor, hrtemVersion: plan.hrtemVersion,
            statistics: "mean and population standard deviation (ddof 0) over the fold models of a cell",
            folds: plan.folds, complete: results.isComplete, datasets: plan.datasets, rows: plan.rows,
            columns: plan.columns, variants: plan.variants, cells: cells,
            models: plan.trainUnits.compactMap { results.models[$0.id] } + (plan.models ?? []), commandLine: plan.commandLine)
    }

    // MARK: CSV

    static let csvHeader = ["trained_on", "trained_on_version", "tested_on", "tested_on_version", "variant", "scope",
                            "models", "hard_dice_mean", "hard_dice_std", "soft_dice_mean", "soft_dice_std",
                            "loss_mean", "loss_std", "fp_rate_mean", "fp_rate_std", "fn_rate_mean", "fn_rate_std",
                            "hard_dice_per_fold", "collapsed_folds"]

    /// `matrix.csv`: one line per cell, row-major; statistics over the cell's fold models.
    public static func csv(_ results: MatrixResults) -> String {
        let plan = results.plan
        var text = csvLine(csvHeader)
        for cell in results.cells {
            text += csvLine([
                name(plan, cell.trainDatasetID), cell.trainDatasetID, name(plan, cell.testDatasetID), cell.testDatasetID,
                plan.variants[cell.variantIndex].label, cell.scope, String(cell.folds.count),
                csvNumber(cell.hardDice?.mean), csvNumber(cell.hardDice?.std),
                csvNumber(cell.softDice?.mean), csvNumber(cell.softDice?.std),
                csvNumber(cell.loss?.mean), csvNumber(cell.loss?.std),
                csvNumber(cell.falsePositiveRate?.mean), csvNumber(cell.falsePositiveRate?.std),
                csvNumber(cell.falseNegativeRate?.mean), csvNumber(cell.falseNegativeRate?.std),
                cell.folds.map { csvNumber($0.metrics.hardDice) }.joined(separator: ";"),
                (cell.collapsedFolds ?? []).map(String.init).joined(separator: ";"),
            ])
        }
        return text
    }

    /// The per-cell CSVs in the study's layout, as (file name, text).
    public static func cellCSVs(_ results: MatrixResults) -> [(String, String)] {
        let plan = results.plan
        return results.cells.map { cell in
            var stem = fileNamePart(name(plan, cell.trainDatasetID))
            if plan.variants.count > 1 { stem += "__" + fileNamePart(plan.variants[cell.variantIndex].label) }
            stem += "__on__" + fileNamePart(name(plan, cell.testDatasetID))
            var text = csvLine(["fold", "test_loss", "test_dice", "test_hard_dice"])
            for fold in cell.folds {
                text += csvLine([String(fold.fold), csvNumber(fold.metrics.loss), csvNumber(fold.metrics.softDice),
                                 csvNumber(fold.metrics.hardDice)])
            }
            return (stem + ".csv", text)
        }
    }

    // MARK: SVG heatmap

    /// Axis text for a dataset: its name then "key: value" lines.
    static func axisLines(_ dataset: DatasetVersionRef, variant: String? = nil) -> [String] {
        var lines = [dataset.name]
        if let variant { lines.append(variant) }
        lines += dataset.metadata.map { "\($0.key): \($0.value)" }
        lines.append("version \(dataset.id.prefix(12))")
        return lines
    }

    /// The heatmap: rows trained on, columns tested on, mean +- std of hard Dice in each cell,
    /// colour by the mean on a fixed [0, 1] scale with its legend.
    public static func heatmapSVG(_ results: MatrixResults) -> String {
        gridSVG(results, title: "Hard Dice: \(results.plan.name)",
                subtitle: "mean ± population std over fold models; diagonal: own test fold, off-diagonal: whole dataset",
                legend: true) { cell, x, y, width, height in
            guard let dice = cell.hardDice else {
                return "<rect x=\"\(coordinate(x))\" y=\"\(coordinate(y))\" width=\"\(coordinate(width))\" height=\"\(coordinate(height))\" fill=\"#dddddd\" stroke=\"#ffffff\"/>\n"
                    + text(x + width / 2, y + height / 2 + 4, "pending", size: 12, colour: "#555555", anchor: "middle")
            }
            let fill = ScoreColour.hex(dice.mean)
            let ink = ScoreColour.wantsDarkText(dice.mean) ? "#111111" : "#ffffff"
            var out = "<rect x=\"\(coordinate(x))\" y=\"\(coordinate(y))\" width=\"\(coordinate(width))\" height=\"\(coordinate(height))\" fill=\"\(fill)\" stroke=\"#ffffff\"><title>\(escapeMarkup("\(fixed(dice.mean, 4)) ± \(fixed(dice.std, 4)) over \(dice.values.count) models"))</title></rect>\n"
            out += text(x + width / 2, y + height / 2 - 2, "\(fixed(dice.mean)) ± \(fixed(dice.std))", size: 14,
                        colour: ink, anchor: "middle", bold: cell.isDiagonal)
            let note = cell.isComplete ? "n = \(cell.folds.count)" : "\(cell.folds.count) of \(cell.expectedFolds) models"
            out += text(x + width / 2, y + height / 2 + 16, note, size: 10, colour: ink, anchor: "middle")
            return out
        }
    }

    /// Over- and under-segmentation per cell: false-positive rate (particle predicted on
    /// background: over-segmentation) and false-negative rate (particle missed: under-segmentation)
    /// as bars on a common scale.
    public static func biasSVG(_ results: MatrixResults) -> String {
        let largest = results.cells.flatMap { [$0.falsePositiveRate?.mean ?? 0, $0.falseNegativeRate?.mean ?? 0] }.max() ?? 0
        let scale = largest > 0 ? largest : 1
        return gridSVG(results, title: "Over/under-segmentation: \(results.plan.name)",
                       subtitle: "FP rate = FP/(FP+TN) (over-segmentation), FN rate = FN/(FN+TP) (under-segmentation); means over fold models",
                       legend: false) { cell, x, y, width, height in
            var out = "<rect x=\"\(coordinate(x))\" y=\"\(coordinate(y))\" width=\"\(coordinate(width))\" height=\"\(coordinate(height))\" fill=\"#f7f7f7\" stroke=\"#ffffff\"/>\n"
            guard let fp = cell.falsePositiveRate, let fn = cell.falseNegativeRate else {
                return out + text(x + width / 2, y + height / 2 + 4, "pending", size: 12, colour: "#555555", anchor: "middle")
            }
            let barMax = width - 70
            for (index, (label, value, colour)) in [("FP", fp.mean, "#d6604d"), ("FN", fn.mean, "#4393c3")].enumerated() {
                let barY = y + 12 + Double(index) * 22
                out += text(x + 6, barY + 11, label, size: 11, colour: "#222222", anchor: "start")
                out += "<rect x=\"\(coordinate(x + 28))\" y=\"\(coordinate(barY))\" width=\"\(coordinate(max(0.5, barMax * value / scale)))\" height=\"14\" fill=\"\(colour)\"/>\n"
                out += text(x + width - 4, barY + 11, fixed(value), size: 11, colour: "#222222", anchor: "end")
            }
            let verdict = fn.mean > fp.mean ? "under-segments" : (fp.mean > fn.mean ? "over-segments" : "balanced")
            out += text(x + width / 2, y + height - 6, verdict, size: 10, colour: "#444444", anchor: "middle")
            return out
        }
    }

    static func text(_ x: Double, _ y: Double, _ content: String, size: Int, colour: String = "#222222",
                     anchor: String = "start", bold: Bool = false) -> String {
        "<text x=\"\(coordinate(x))\" y=\"\(coordinate(y))\" font-size=\"\(size)\" fill=\"\(colour)\" text-anchor=\"\(anchor)\"\(bold ? " font-weight=\"bold\"" : "")>\(escapeMarkup(content))</text>\n"
    }

    /// The shared layout of the heatmap and the bias grid.
    static func gridSVG(_ results: MatrixResults, title: String, subtitle: String, legend: Bool,
                        drawCell: (CellResult, Double, Double, Double, Double) -> String) -> String {
        let plan = results.plan
        let rows = rows(plan)
        let columns = columns(plan)
        let rowLines = rows.map { axisLines($0.dataset, variant: $0.variantLabel) }
        let columnLines = columns.map { axisLines($0) }
        let characterWidth = 6.6
        let longestRow = rowLines.flatMap { $0 }.map(\.count).max() ?? 10
        let longestColumn = columnLines.flatMap { $0 }.map(\.count).max() ?? 10
        let left = min(380, max(140, Double(longestRow) * characterWidth + 24))
        let cellWidth = min(260, max(150, Double(longestColumn) * characterWidth + 12))
        let cellHeight = max(70, Double((rowLines.map(\.count).max() ?? 1)) * 14 + 14)
        let columnLineCount = columnLines.map(\.count).max() ?? 1
        let top = 58 + Double(columnLineCount) * 14 + 20
        let gridWidth = cellWidth * Double(columns.count)
        let gridHeight = cellHeight * Double(rows.count)
        let legendWidth = legend ? 110.0 : 0
        let width = max(left + gridWidth + legendWidth + 20, Double(max(title.count * 9, subtitle.count * 6)) + 24)
        let height = top + max(gridHeight, legend ? 180 : 0) + 30

        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(coordinate(width))\" height=\"\(coordinate(height))\" viewBox=\"0 0 \(coordinate(width)) \(coordinate(height))\" font-family=\"Helvetica, Arial, sans-serif\" role=\"img\">\n"
        svg += "<title>\(escapeMarkup(title))</title>\n"
        svg += "<rect x=\"0\" y=\"0\" width=\"\(coordinate(width))\" height=\"\(coordinate(height))\" fill=\"#ffffff\"/>\n"
        svg += text(12, 22, title, size: 16, bold: true)
        svg += text(12, 40, subtitle, size: 11, colour: "#555555")
        svg += text(left - 8, top - 8, "trained on ↓  tested on →", size: 11, colour: "#555555", anchor: "end")
        for (columnIndex, lines) in columnLines.enumerated() {
            let x = left + cellWidth * (Double(columnIndex) + 0.5)
            for (lineIndex, line) in lines.enumerated() {
                svg += text(x, 58 + Double(lineIndex) * 14, line, size: lineIndex == 0 ? 13 : 10,
                            colour: lineIndex == 0 ? "#111111" : "#555555", anchor: "middle", bold: lineIndex == 0)
            }
        }
        for (rowIndex, lines) in rowLines.enumerated() {
            let y = top + cellHeight * Double(rowIndex) + 16
            for (lineIndex, line) in lines.enumerated() {
                svg += text(left - 10, y + Double(lineIndex) * 14, line, size: lineIndex == 0 ? 13 : 10,
                            colour: lineIndex == 0 ? "#111111" : "#555555", anchor: "end", bold: lineIndex == 0)
            }
        }
        for (rowIndex, row) in rows.enumerated() {
            for (columnIndex, column) in columns.enumerated() {
                guard let cell = results.cell(train: row.datasetID, test: column.id, variant: row.variantIndex) else { continue }
                svg += drawCell(cell, left + cellWidth * Double(columnIndex), top + cellHeight * Double(rowIndex),
                                cellWidth, cellHeight)
            }
        }
        if legend {
            let barX = left + gridWidth + 24
            let barHeight = max(gridHeight, 180) - 20
            svg += "<defs><linearGradient id=\"score-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n"
            for step in 0...10 {
                let value = Double(step) / 10
                svg += "<stop offset=\"\(fixed(value, 1))\" stop-color=\"\(ScoreColour.hex(value))\"/>\n"
            }
            svg += "</linearGradient></defs>\n"
            svg += "<rect x=\"\(coordinate(barX))\" y=\"\(coordinate(top + 10))\" width=\"18\" height=\"\(coordinate(barHeight))\" fill=\"url(#score-scale)\" stroke=\"#888888\"/>\n"
            for step in 0...4 {
                let value = Double(step) / 4
                let y = top + 10 + barHeight * (1 - value)
                svg += "<line x1=\"\(coordinate(barX + 18))\" y1=\"\(coordinate(y))\" x2=\"\(coordinate(barX + 23))\" y2=\"\(coordinate(y))\" stroke=\"#444444\"/>\n"
                svg += text(barX + 26, y + 4, fixed(value, 2), size: 10)
            }
            svg += text(barX, top + 2, "hard Dice", size: 11, colour: "#333333")
        }
        svg += "</svg>\n"
        return svg
    }

    // MARK: HTML

    /// The self-contained report: heatmap, bias view, cells, datasets with their recipes,
    /// models, sample predictions (inline PNG), and the commands that reproduce the run.
    public static func html(_ results: MatrixResults, planFile: URL? = nil) -> String {
        let plan = results.plan
        var page = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escapeMarkup("hrtem \(title(plan.kind).lowercased()): \(plan.name)"))</title>
        <style>
        body { font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
        table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
        th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        pre { background: #f5f5f5; padding: 8px; overflow-x: auto; font-size: 12px; }
        figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
        figure img { max-width: 320px; image-rendering: pixelated; border: 1px solid #ccc; }
        .note { color: #555; font-size: 13px; }
        .warning { background: #fff3cd; padding: 8px; border: 1px solid #e0c36c; }
        </style>
        </head>
        <body>

        """
        page += "<h1>\(escapeMarkup(title(plan.kind))): \(escapeMarkup(plan.name))</h1>\n"
        page += "<p class=\"note\">plan \(escapeMarkup(plan.id)) · \(plan.folds) fold models per row · executor \(escapeMarkup(plan.executor.rawValue)) · hrtem \(escapeMarkup(plan.hrtemVersion))</p>\n"
        if plan.executor == .simulated {
            page += "<p class=\"warning\">These numbers come from the simulated executor: no network was trained. They test the machinery only.</p>\n"
        }
        if !results.isComplete {
            page += "<p class=\"warning\">Incomplete: \(results.missingUnits) unit(s) have no result yet. Rerun the matrix (it resumes) or collect again.</p>\n"
        }
        page += "<p>Each cell scores the fold models trained on the row's dataset on the column's dataset: on the diagonal, model <i>i</i> on its own held-out fold <i>i</i>; off the diagonal, every fold model on the whole other dataset; every patch under the 8 dihedral transforms. Cells show the mean and the population standard deviation (ddof 0) of the per-model hard Dice.</p>\n"
        page += CollapseReport.warning(results)
        page += "<h2>Hard Dice</h2>\n" + heatmapSVG(results)
        if plan.kind == .noiseSweep {
            page += "<h2>Score against noise level</h2>\n" + SweepReport.lineSVG(results)
        }
        page += "<h2>Over- and under-segmentation</h2>\n<p class=\"note\">A high false-negative rate means the network misses particle pixels (under-segments); a high false-positive rate means it marks background as particle (over-segments).</p>\n"
        page += biasSVG(results)
        page += cellTable(results)
        page += ParticleReport.section(results)
        page += samplesSection(results)
        page += datasetsSection(plan)
        page += modelsSection(results)
        page += CollapseReport.curvesSection(results)
        page += reproduceSection(plan, planFile: planFile)
        page += "</body>\n</html>\n"
        return page
    }

    static func cellTable(_ results: MatrixResults) -> String {
        let plan = results.plan
        var out = "<h2>Cells</h2>\n<table>\n<tr><th>trained on</th>\(plan.variants.count > 1 ? "<th>variant</th>" : "")<th>tested on</th><th>scope</th><th>models</th><th>hard Dice</th><th>soft Dice</th><th>loss</th><th>FP rate</th><th>FN rate</th><th>hard Dice per fold</th><th>collapsed (left out)</th></tr>\n"
        func both(_ summary: Summary?) -> String {
            summary.map { "<td class=\"num\">\(fixed($0.mean, 4)) ± \(fixed($0.std, 4))</td>" } ?? "<td>pending</td>"
        }
        for cell in results.cells {
            out += "<tr><td>\(escapeMarkup(name(plan, cell.trainDatasetID)))</td>"
            if plan.variants.count > 1 { out += "<td>\(escapeMarkup(plan.variants[cell.variantIndex].label))</td>" }
            out += "<td>\(escapeMarkup(name(plan, cell.testDatasetID)))</td><td>\(escapeMarkup(cell.scope))</td>"
            out += "<td class=\"num\">\(cell.folds.count)/\(cell.expectedFolds)</td>"
            out += both(cell.hardDice) + both(cell.softDice) + both(cell.loss) + both(cell.falsePositiveRate) + both(cell.falseNegativeRate)
            out += "<td class=\"num\">\(cell.folds.map { "\($0.fold): \(fixed($0.metrics.hardDice, 4))" }.joined(separator: ", "))</td>"
            out += "<td>\(CollapseReport.cellNote(cell))</td></tr>\n"
        }
        return out + "</table>\n"
    }

    /// Overlays the evaluator wrote, inline as base64 PNG: the first of each cell's first model.
    static func samplesSection(_ results: MatrixResults) -> String {
        var figures = ""
        for cell in results.cells {
            guard let fold = cell.folds.first, let path = fold.sampleOverlays?.first,
                  let data = FileManager.default.contents(atPath: path), data.starts(with: [0x89, 0x50, 0x4E, 0x47]),
                  data.count <= 4 << 20 else { continue }
            let caption = "\(name(results.plan, cell.trainDatasetID)) → \(name(results.plan, cell.testDatasetID)), model of fold \(fold.fold)"
            figures += "<figure><img alt=\"\(escapeMarkup(caption))\" src=\"data:image/png;base64,\(data.base64EncodedString())\"><figcaption>\(escapeMarkup(caption))</figcaption></figure>\n"
        }
        guard !figures.isEmpty else { return "" }
        return "<h2>Sample predictions</h2>\n<p class=\"note\">One patch per cell, scored by the cell's first fold model: green = particle found, red = background marked particle (false positive), blue = particle missed (false negative).</p>\n" + figures
    }

    /// What the report calls an experiment of this kind.
    static func title(_ kind: ExperimentKind) -> String {
        switch kind {
        case .matrix: "Generalization matrix"
        case .noiseSweep: "Noise-augmentation sweep"
        case .evaluation: "Generalization matrix of existing models"
        }
    }

    static func datasetsSection(_ plan: MatrixPlan) -> String {
        var out = "<h2>Datasets</h2>\n<table>\n<tr><th>name</th><th>version id</th><th>folds</th><th>metadata</th><th>folder</th></tr>\n"
        for dataset in plan.datasets {
            out += "<tr><td>\(escapeMarkup(dataset.name))</td><td><code>\(escapeMarkup(dataset.id))</code></td>"
            out += "<td class=\"num\">\(dataset.foldCount.map(String.init) ?? "?")</td>"
            out += "<td>\(dataset.metadata.map { escapeMarkup("\($0.key): \($0.value)") }.joined(separator: "<br>"))</td>"
            out += "<td><code>\(escapeMarkup(dataset.folder))</code></td></tr>\n"
        }
        out += "</table>\n"
        for dataset in plan.datasets where !dataset.folder.isEmpty {
            let recipe = URL(fileURLWithPath: dataset.folder).appendingPathComponent("recipe.json")
            if let data = FileManager.default.contents(atPath: recipe.path), data.count <= 1 << 20 {
                out += "<details><summary>recipe of \(escapeMarkup(dataset.label))</summary>\n<pre>\(escapeMarkup(String(decoding: data, as: UTF8.self)))</pre></details>\n"
            }
        }
        if plan.kind == .evaluation {
            return out + "<p class=\"note\">The fold models were evaluated as they are (trained earlier or imported); nothing was trained for this report.</p>\n"
        }
        out += "<h3>Training settings</h3>\n<table>\n<tr><th>variant</th><th>epochs</th><th>batch</th><th>learning rate</th><th>seed</th><th>noise</th><th>rotation</th><th>threads</th></tr>\n"
        for variant in plan.variants {
            let s = variant.settings
            let noise = switch s.noise {
            case .none: "none"
            case .fixed(let rho): "rho \(rho)"
            case .uniform(let rho): "rho ~ U(0, \(rho))"
            }
            out += "<tr><td>\(escapeMarkup(variant.label))</td><td class=\"num\">\(s.epochs)</td><td class=\"num\">\(s.batchSize)</td><td class=\"num\">\(s.learningRate)</td><td class=\"num\">\(variant.baseSeed.map(String.init) ?? "study per-fold")</td><td>\(escapeMarkup(noise))</td><td>\(s.rotate ? "on" : "off")</td><td class=\"num\">\(s.threads)</td></tr>\n"
        }
        return out + "</table>\n"
    }

    static func modelsSection(_ results: MatrixResults) -> String {
        if let models = results.plan.models {
            var out = "<h2>Fold models</h2>\n<table>\n<tr><th>model id</th><th>row</th><th>trained on</th><th>fold</th><th>seed</th><th>folder</th></tr>\n"
            for model in models {
                let row = results.plan.evaluationUnits.first { $0.trainUnitID == model.id }.map { name(results.plan, $0.trainDatasetID) } ?? ""
                out += "<tr><td><code>\(escapeMarkup(model.id))</code></td><td>\(escapeMarkup(row))</td><td>\(escapeMarkup(model.card.datasetVersion))</td>"
                out += "<td class=\"num\">\(model.card.fold)</td><td class=\"num\">\(model.card.seed)</td><td><code>\(escapeMarkup(model.folder))</code></td></tr>\n"
            }
            return out + "</table>\n"
        }
        var out = "<h2>Fold models</h2>\n<table>\n<tr><th>model id</th><th>trained on</th><th>variant</th><th>fold</th><th>best epoch</th><th>best validation loss</th><th>folder</th></tr>\n"
        for unit in results.plan.trainUnits {
            let model = results.models[unit.id]
            out += "<tr><td><code>\(escapeMarkup(unit.id))</code></td><td>\(escapeMarkup(unit.dataset.name))</td>"
            out += "<td>\(escapeMarkup(results.plan.variants[unit.variantIndex].label))</td><td class=\"num\">\(unit.fold)</td>"
            out += "<td class=\"num\">\(model.map { String($0.card.bestEpoch) } ?? "")</td>"
            out += "<td class=\"num\">\(model.map { fixed($0.card.bestValidationLoss, 5) } ?? "")</td>"
            out += "<td><code>\(escapeMarkup(model?.folder ?? "not trained yet"))</code></td></tr>\n"
        }
        return out + "</table>\n"
    }

    static func reproduceSection(_ plan: MatrixPlan, planFile: URL?) -> String {
        var out = "<h2>How to reproduce</h2>\n"
        if !plan.commandLine.isEmpty {
            var local: [String] = [], skipNext = false
            for word in plan.commandLine {
                if skipNext { skipNext = false; continue }
                if word == "--emit-slurm" { skipNext = true; continue }
                if word.hasPrefix("--emit-slurm=") { continue }
                local.append(word)
            }
            out += "<p>The command that plans and runs this experiment here (a rerun resumes and redoes nothing finished):</p>\n"
            out += "<pre>\(escapeMarkup(local.map(shellQuote).joined(separator: " ")))</pre>\n"
            out += "<p>The same on a Slurm cluster (dataset versions and the data folder on shared storage):</p>\n"
            out += "<pre>\(escapeMarkup((local.map(shellQuote) + ["--emit-slurm", "slurm-\(plan.id)"]).joined(separator: " ")))\nbash slurm-\(escapeMarkup(plan.id))/submit.sh</pre>\n"
        }
        if let planFile {
            let quoted = shellQuote(planFile.path)
            let training = plan.trainUnits.isEmpty ? "all are evaluations" : "training units are 0 to \(plan.trainUnits.count - 1)"
            out += "<p>Run one unit of the plan (index 0 to \(plan.unitCount - 1); \(training)), then gather the results and rewrite this report:</p>\n"
            out += "<pre>\(escapeMarkup("hrtem matrix run-unit --plan \(quoted) --unit 0\nhrtem matrix collect --plan \(quoted)"))</pre>\n"
        }
        return out
    }
}

extension MatrixReport {
    /// The matrix as a plain-text table (hard Dice mean ± std), for a terminal or a note.
    public static func textTable(_ results: MatrixResults) -> String {
        let plan = results.plan
        let rows = rows(plan)
        let columns = columns(plan)
        let rowNames = rows.map { $0.dataset.name + ($0.variantLabel.map { " [\($0)]" } ?? "") }
        let first = max(("trained on \\ tested on").count, rowNames.map(\.count).max() ?? 0)
        var widths = columns.map { max($0.name.count, 15) }
        var text = "trained on \\ tested on".padding(toLength: first, withPad: " ", startingAt: 0)
        for (index, column) in columns.enumerated() {
            widths[index] = max(widths[index], column.name.count)
            text += "  " + column.name.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        text += "\n"
        for (rowIndex, row) in rows.enumerated() {
            text += rowNames[rowIndex].padding(toLength: first, withPad: " ", startingAt: 0)
            for (index, column) in columns.enumerated() {
                let cell = results.cell(train: row.datasetID, test: column.id, variant: row.variantIndex)
                var value = cell?.hardDice.map { "\(fixed($0.mean)) ± \(fixed($0.std))" } ?? "pending"
                if cell?.collapsedFolds != nil { value += " †" }
                text += "  " + value.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }
            text += "\n"
        }
        return text + CollapseReport.textNote(results)
    }
}
