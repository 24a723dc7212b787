import Foundation
import Segmentation

extension CellResult {
    /// Particle F1 of the cell's fold models (those whose evaluation measured particles).
    public var particleF1: Summary? { Summary(folds.compactMap { $0.particles?.f1 }) }
    /// Mean predicted minus mean true equivalent diameter, per fold model, in `particleUnit`.
    public var diameterBias: Summary? { Summary(folds.compactMap { $0.particles?.meanDiameterDifference }) }
    /// The unit of `diameterBias`: nm when the test dataset's pixel scale is known, else px.
    public var particleUnit: String? { folds.compactMap { $0.particles?.unit }.first }
}

/// The matrix report's particle view: each cell's particle F1 and diameter bias beside its hard
/// Dice, so over- and under-segmentation read as sizes.
public enum ParticleReport {
    /// The one pixel scale (nm/px) of a dataset version's frames, from its metadata; nil when
    /// unknown or when its frames have several (sizes are then given in px).
    public static func pixelScale(of dataset: DatasetVersionRef) -> Double? {
        guard let entry = dataset.metadata.first(where: { $0.key == "pixel scale" }) else { return nil }
        let text = entry.value.replacingOccurrences(of: " nm/px", with: "")
        guard !text.contains(","), !text.contains("…"), let value = Double(text.trimmingCharacters(in: .whitespaces)),
              value > 0 else { return nil }
        return value
    }

    /// The HTML section; empty when no evaluation measured particles.
    public static func section(_ results: MatrixResults) -> String {
        guard results.cells.contains(where: { $0.particleF1 != nil }) else { return "" }
        let plan = results.plan
        var out = "<h2>Particles</h2>\n<p class=\"note\">Each patch's predicted particles (8-connected) matched one to one to the label's by IoU ≥ 0.5, pooled over the patches a fold model was scored on (once each, no symmetries). Diameter bias: mean predicted minus mean true equivalent diameter; positive = sizes inflated (over-segmentation), negative = shrunk. Mean ± population standard deviation over fold models; nm where the test dataset has one pixel scale, else px.</p>\n"
        out += "<table>\n<tr><th>trained on</th>\(plan.variants.count > 1 ? "<th>variant</th>" : "")<th>tested on</th><th>hard Dice</th><th>particle F1</th><th>diameter bias</th><th>detected / missed / spurious (all folds)</th></tr>\n"
        for cell in results.cells {
            out += "<tr><td>\(escapeMarkup(MatrixReport.name(plan, cell.trainDatasetID)))</td>"
            if plan.variants.count > 1 { out += "<td>\(escapeMarkup(plan.variants[cell.variantIndex].label))</td>" }
            out += "<td>\(escapeMarkup(MatrixReport.name(plan, cell.testDatasetID)))</td>"
            out += summaryCell(cell.hardDice, decimals: 4, unit: "") + summaryCell(cell.particleF1, decimals: 4, unit: "")
            out += summaryCell(cell.diameterBias, decimals: 3, unit: cell.particleUnit.map { " " + $0 } ?? "", signed: true)
            let scores = cell.folds.compactMap(\.particles)
            out += scores.isEmpty ? "<td>–</td>" : "<td class=\"num\">\(scores.reduce(0) { $0 + $1.detected }) / \(scores.reduce(0) { $0 + $1.missed }) / \(scores.reduce(0) { $0 + $1.spurious })</td>"
            out += "</tr>\n"
        }
        return out + "</table>\n"
    }

    static func summaryCell(_ summary: Summary?, decimals: Int, unit: String, signed: Bool = false) -> String {
        guard let summary else { return "<td>–</td>" }
        let mean = String(format: signed ? "%+.\(decimals)f" : "%.\(decimals)f", summary.mean)
        return "<td class=\"num\">\(mean) ± \(fixed(summary.std, decimals))\(escapeMarkup(unit))</td>"
    }
}
