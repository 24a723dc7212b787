import Catalog
import Experiments
import Foundation
import Micrograph

/// The deployment report of `hrtem segment --report`: one self-contained HTML page (pictures
/// inlined as base64 PNG, histograms as inline SVG, nothing fetched) with each frame's overlay,
/// uncertainty map, particle table and histogram, and the recommendation behind the models.
enum SegmentReport {
    /// Rows of the particle table shown per frame (the CSV beside the outputs has them all).
    static let shownParticles = 50

    static func html(frames: [FrameSegmentation], ensemble: EnsembleModels, outputs: URL,
                     catalog: CatalogStore?, dataFolder: DataFolder) throws -> String {
        let evidence = try catalog.map { try Recommendation.evidence(in: $0, dataFolder: dataFolder) } ?? []
        let usedDatasets = Set(ensemble.trained.map(\.card.datasetVersion))
        var page = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>hrtem segmentation report</title>
        <style>
        body { font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
        table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
        th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
        figure img { max-width: 420px; border: 1px solid #ccc; }
        .note { color: #555; font-size: 13px; }
        .warning { background: #fff3cd; padding: 8px; border: 1px solid #e0c36c; }
        tr.chosen { background: #e6f2e6; }
        </style>
        </head>
        <body>
        <h1>Segmentation report</h1>

        """
        page += "<h2>Models</h2>\n<table>\n<tr><th>model</th><th>trained on</th><th>fold</th><th>architecture</th></tr>\n"
        for model in ensemble.trained {
            let architecture = model.network.architecture
            page += "<tr><td>\(escapeMarkup(model.folder.path))</td><td>\(escapeMarkup(model.card.datasetVersion))</td>"
                + "<td class=\"num\">\(model.card.fold)</td><td>widths \(architecture.widths.map(String.init).joined(separator: ",")), bottleneck \(architecture.bottleneckWidth)</td></tr>\n"
        }
        page += "</table>\n<p class=\"note\">Probability: the mean over the models of each pixel's particle probability; mask: where it is above 0.5. Uncertainty map: the per-pixel standard deviation of the models' probabilities, in yellow over the frame. Uncertainty score: its mean over the frame; disagreement: the fraction of pixels on which the models' own masks differ.</p>\n"
        for frame in frames {
            page += "<h2>\(escapeMarkup(frame.stem))</h2>\n"
            page += "<p>\(escapeMarkup(frame.frame)) · \(frame.width) × \(frame.height) px · \(escapeMarkup(frame.conditions.description))</p>\n"
            page += String(format: "<p>%d models · uncertainty %.4f · entropy %.4f bits · disagreement %.4f · %d particles",
                           frame.models, frame.uncertainty, frame.meanEntropyBits, frame.disagreement, frame.particles)
            if let mean = frame.meanEquivalentDiameter {
                page += String(format: " · mean equivalent diameter %.3f %@", mean, frame.unit)
            }
            page += "</p>\n"
            if frame.unit == "px" {
                page += "<p class=\"warning\">No pixel size is known for this frame (no catalog row, no length calibration): sizes are in pixels.</p>\n"
            }
            for (suffix, caption) in [("overlay.png", "mask over the frame"), ("uncertainty.png", "models' disagreement (std)")] {
                let bytes = try Data(contentsOf: outputs.appendingPathComponent("\(frame.stem)_\(suffix)"))
                page += "<figure><img alt=\"\(escapeMarkup(caption))\" src=\"data:image/png;base64,\(bytes.base64EncodedString())\"><figcaption>\(escapeMarkup(caption))</figcaption></figure>\n"
            }
            let svg = try String(contentsOf: outputs.appendingPathComponent("\(frame.stem)_histogram.svg"), encoding: .utf8)
            page += "<figure>\(svg)<figcaption>particle sizes</figcaption></figure>\n"
            page += particleTable(try String(contentsOf: outputs.appendingPathComponent("\(frame.stem)_particles.csv"), encoding: .utf8))
            page += recommendationSection(Recommendation(conditions: frame.conditions, evidence: evidence), used: usedDatasets,
                                          hasEvidence: !evidence.isEmpty)
        }
        return page + "</body>\n</html>\n"
    }

    static func particleTable(_ csv: String) -> String {
        let lines = csv.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        guard let header = lines.first else { return "" }
        var out = "<table>\n<tr>" + header.map { "<th>\(escapeMarkup($0.replacingOccurrences(of: "_", with: " ")))</th>" }.joined() + "</tr>\n"
        for row in lines.dropFirst().prefix(shownParticles) {
            out += "<tr>" + row.map { "<td class=\"num\">\(escapeMarkup($0))</td>" }.joined() + "</tr>\n"
        }
        out += "</table>\n"
        if lines.count - 1 > shownParticles {
            out += "<p class=\"note\">The first \(shownParticles) of \(lines.count - 1) particles; all are in the CSV.</p>\n"
        }
        return out
    }

    static func recommendationSection(_ recommendation: Recommendation, used: Set<String>, hasEvidence: Bool) -> String {
        var out = "<h3>Which models suit this frame</h3>\n"
        guard hasEvidence else {
            return out + "<p class=\"note\">The catalog holds no matrix results, so the choice of models rests on the user alone (run hrtem matrix to measure how models transfer).</p>\n"
        }
        out += "<p class=\"note\">Each training dataset's models judged on the tested dataset nearest this frame, by the distance sqrt(log2(pixel scale ratio)² + log10(dose ratio)²); near means ≤ \(AcquisitionConditions.nearDistance). Highlighted: the dataset the models used here were trained on.</p>\n"
        if let warning = recommendation.warning { out += "<p class=\"warning\">\(escapeMarkup(warning))</p>\n" }
        out += "<table>\n<tr><th>rank</th><th>trained on</th><th>expected hard Dice</th><th>judged on</th><th>distance</th></tr>\n"
        for (index, choice) in recommendation.ranking.enumerated() {
            out += "<tr\(used.contains(choice.trainDatasetID) ? " class=\"chosen\"" : "")><td class=\"num\">\(index + 1)</td><td>\(escapeMarkup(choice.trainDatasetName))</td>"
            out += String(format: "<td class=\"num\">%.4f ± %.4f</td>", choice.expectedHardDice, choice.hardDiceSpread)
            out += "<td>\(escapeMarkup(choice.nearestTestDatasetName)) (\(escapeMarkup(choice.nearestTestConditions.description)))</td>"
            out += String(format: "<td class=\"num\">%.2f%@</td></tr>\n", choice.distance, choice.isNear ? "" : " (far)")
        }
        out += "</table>\n"
        if let best = recommendation.ranking.first, !used.contains(best.trainDatasetID), best.isNear {
            out += "<p class=\"warning\">The models used here are not the first choice for this frame's conditions: \(escapeMarkup(best.trainDatasetName))'s are expected to do better.</p>\n"
        }
        return out
    }
}
