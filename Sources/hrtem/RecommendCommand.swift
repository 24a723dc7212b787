import ArgumentParser
import Catalog
import Experiments
import Foundation
import Micrograph
import Segmentation

struct RecommendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recommend",
        abstract: "Rank the catalog's models for a frame's conditions, from matrix results measured nearest them.",
        discussion: """
        The frame's conditions are its dose and pixel scale: the catalog's row for a catalogued
        frame, the file's own tags for another file, or the geometric means over the frames a
        --where query selects. Every registered model's recorded results are grouped by the
        dataset it was trained on; each group is judged on the tested dataset nearest the frame,
        by the distance
            sqrt(log2(pixel scale ratio)^2 + log10(dose ratio)^2)
        (a factor 2 in scale or 10 in dose is one unit; a field unknown on either side adds
        nothing). Groups tested within 0.5 come first, by expected hard Dice (the mean over its
        fold models there); a warning says when no model was tested that near.

        For a frame file, the first choice's models are then run on it as an ensemble and their
        disagreement is reported (--no-check skips this).

        Examples:
          hrtem recommend 20240108_Au_UTC_330kx_1000e_0p0798s_01.dm3
          hrtem recommend new/frame.dm4 --json
          hrtem recommend --where 'dose < 100 and pixel_scale = 0.02'
        """)

    @OptionGroup var data: DataOptions
    @Argument(help: "A frame: catalogued (id, 'session/file', file name) or a file.") var frame: String?
    @Option(name: .customLong("where"), help: "A query; its frames' conditions are used.") var query: String?
    @Flag(inversion: .prefixedNo, help: "Run the first choice's models on the frame and report their disagreement.") var check = true
    @Option(help: "Tile size for the check (default: the models' patch size).") var tile: Int?
    @Option(help: "Threads for the check.") var threads = 2
    @Flag(help: "Print the recommendation as JSON.") var json = false

    func validate() throws {
        if (frame == nil) == (query == nil) { throw ValidationError("give a FRAME or --where QUERY (one of them)") }
    }

    func run() throws {
        let folder = data.folder
        guard FileManager.default.fileExists(atPath: folder.catalogFile.path) else {
            throw ValidationError("no catalog in \(folder.url.path): recommendations come from matrix results recorded there")
        }
        let catalog = try CatalogStore(folder: folder)
        let conditions: AcquisitionConditions
        var frameFile: URL?
        if let query {
            let frames = try catalog.frames(matching: query)
            guard !frames.isEmpty else { throw ValidationError("the query selects no frame: \(query)") }
            conditions = AcquisitionConditions(frames: frames)
        } else if let record = try? FrameDetails.resolve(frame!, in: catalog) {
            conditions = AcquisitionConditions(dose: record.dose, pixelScale: record.pixelScaleNm)
            frameFile = record.path.map { URL(fileURLWithPath: $0) }
        } else {
            let url = URL(fileURLWithPath: frame!)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ValidationError("\(frame!): no such frame in the catalog and no such file")
            }
            let header = try readMicrographHeader(at: url)
            conditions = AcquisitionConditions(dose: header.microscope.doseElectronsPerA2, pixelScale: header.nanometresPerPixel)
            frameFile = url
        }
        guard conditions.dose != nil || conditions.pixelScale != nil else {
            throw ValidationError("\(frame ?? query!): no dose and no pixel scale known (no calibration, no catalog row): "
                                  + "nothing to compare with the tested conditions")
        }
        let recommendation = Recommendation(conditions: conditions, evidence: try Recommendation.evidence(in: catalog, dataFolder: folder))
        var disagreement: FrameSegmentation?
        if check, let frameFile, let first = recommendation.ranking.first {
            let folders = first.modelFolders.map { URL(fileURLWithPath: $0) }.filter { TrainedModel.isFinished(in: $0) }
            if !folders.isEmpty {
                let ensemble = try EnsembleModels.load(folders, threads: threads)
                let scratch = folder.temporaryFolder.appendingPathComponent("recommend-\(ProcessInfo.processInfo.processIdentifier)")
                defer { try? FileManager.default.removeItem(at: scratch) }
                try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
                disagreement = try SegmentOutputs.segment(frame: frameFile.path, ensemble: ensemble, tile: tile ?? ensemble.patch,
                                                          catalog: catalog, to: scratch)
            }
        }
        if json {
            print(String(decoding: try CanonicalJSON.file(RecommendationOutput(recommendation: recommendation, check: disagreement)),
                         as: UTF8.self), terminator: "")
            return
        }
        print(recommendation.text, terminator: "")
        if let warning = recommendation.warning { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        if let disagreement {
            print(String(format: "check on the frame with %@'s %d models: uncertainty %.4f (mean std), disagreement %.4f of pixels",
                         recommendation.ranking[0].trainDatasetName, disagreement.models, disagreement.uncertainty,
                         disagreement.disagreement))
        } else if check && frameFile != nil && !recommendation.ranking.isEmpty {
            print("check skipped: the first choice's model folders are not on this machine")
        }
    }
}

/// What `hrtem recommend --json` prints.
struct RecommendationOutput: Codable {
    var recommendation: Recommendation
    var check: FrameSegmentation?
}
