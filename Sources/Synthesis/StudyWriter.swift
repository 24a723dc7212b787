import Foundation
import Micrograph

/// What `writeSyntheticStudy` wrote.
public struct SyntheticStudySummary: Sendable {
    public var root: URL
    public var frames: Int
    public var folders: [String]
    public var metadataTable: URL
    public var groundTruth: URL
    public var preview: URL?
}

/// The ground truth of one written frame, as `synthesis.json` lists it.
public struct SyntheticFrameTruth: Codable, Equatable, Sendable {
    public var frame: String
    public var label: String
    public var session: Int
    public var gain: Double
    public var offset: Double
    public var electronsPerPixel: Double
    public var particlePixels: Int
    public var particles: [SyntheticParticle]
    /// (row, column) of every injected x-ray hit.
    public var xrayHits: [PixelPosition]
}

/// `synthesis.json`: the plan and every frame's ground truth.
public struct SyntheticStudyTruth: Codable, Equatable, Sendable {
    public var plan: SyntheticStudyPlan
    public var sessions: [SessionProfile]
    public var frames: [SyntheticFrameTruth]
}

/// Writes a synthetic study laid out like the NERSC mirror (see `SyntheticStudyPlan`):
/// `<Folder>/<file>` frames, `<Folder>/Labels/<stem>_label.png` (8-bit gray, 0 and 255),
/// `Dataset_metadata.csv` in the study's format, `synthesis.json` with the plan and the exact
/// ground truth (particles, x-ray hits, session cameras), and with `preview` a contact sheet
/// `preview.png` of the first frame of every condition with its label's outline.
///
/// Every file appears atomically under its final name; the metadata table is written last,
/// so an interrupted run leaves no table that names missing frames.
/// - Parameters:
///   - overwrite: write into a non-empty `root`, replacing files of the same names (files of an
///     earlier run with other names stay; the new metadata table lists only this run's frames);
///     without it a non-empty `root` is refused before anything is written.
///   - progress: called after each frame with (frames done, total, the entry).
/// - Throws: `SynthesisError` for a bad plan or a non-empty folder; `FormatError` when a file
///   cannot be written.
@discardableResult
public func writeSyntheticStudy(_ plan: SyntheticStudyPlan, to root: URL, preview: Bool = false,
                                previewTileSide: Int = 256, overwrite: Bool = false,
                                progress: ((Int, Int, SyntheticStudyEntry) -> Void)? = nil) throws -> SyntheticStudySummary {
    try plan.validate()
    let fileManager = FileManager.default
    if !overwrite, let existing = try? fileManager.contentsOfDirectory(atPath: root.path),
       existing.contains(where: { !$0.hasPrefix(".") }) {
        throw SynthesisError(root.path, "is not empty; choose an empty folder or pass --overwrite")
    }
    let entries = plan.entries
    var truths = [SyntheticFrameTruth]()
    var tiles = [SynthesisCondition: ContactSheetTile]()
    for (index, entry) in entries.enumerated() {
        let frame = plan.frame(for: entry)
        let frameURL = root.appendingPathComponent(entry.folder).appendingPathComponent(entry.fileName)
        let labelURL = root.appendingPathComponent(entry.folder).appendingPathComponent("Labels")
            .appendingPathComponent(entry.labelFileName)
        try writeSyntheticFrameFile(frame, entry: entry, format: plan.format, to: frameURL)
        try writeLabelPNG(frame.label, to: labelURL)
        truths.append(SyntheticFrameTruth(
            frame: entry.framePath, label: entry.labelPath, session: entry.session, gain: frame.session.gain,
            offset: frame.session.offset, electronsPerPixel: frame.electronsPerPixel,
            particlePixels: frame.label.pixels.reduce(0) { $0 + Int($1) }, particles: frame.particles,
            xrayHits: frame.xrayHits))
        if preview, entry.session == 0, entry.number == 1, tiles[entry.condition] == nil {
            tiles[entry.condition] = ContactSheetTile(counts: frame.counts, label: frame.label, side: previewTileSide,
                                                      caption: previewCaption(entry.condition))
        }
        progress?(index + 1, entries.count, entry)
    }
    let truth = SyntheticStudyTruth(plan: plan, sessions: (0..<plan.sessions).map(plan.session), frames: truths)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let truthURL = root.appendingPathComponent("synthesis.json")
    try writeFileAtomically(try encoder.encode(truth), to: truthURL)
    var previewURL: URL?
    if preview {
        let ordered = plan.conditions.compactMap { tiles[$0] }
        let columns = max(1, plan.doses.count * plan.pixelScales.count)
        let url = root.appendingPathComponent("preview.png")
        try writePreviewPNG(contactSheet(ordered, columns: columns), to: url)
        previewURL = url
    }
    let tableURL = root.appendingPathComponent("Dataset_metadata.csv")
    try writeFileAtomically(Data(plan.metadataTable.utf8), to: tableURL)
    var folders = [String]()
    for entry in entries where folders.last != entry.folder && !folders.contains(entry.folder) { folders.append(entry.folder) }
    return SyntheticStudySummary(root: root, frames: entries.count, folders: folders, metadataTable: tableURL,
                                 groundTruth: truthURL, preview: previewURL)
}

/// "Au 2.2nm 0.02nm/px 80e" (what the contact sheet's font can draw).
func previewCaption(_ condition: SynthesisCondition) -> String {
    "\(condition.material.symbol) \(formatStudyNumber(condition.particleSize))nm \(formatStudyNumber(condition.pixelScale))nm/px \(formatStudyNumber(condition.dose))e"
}

/// The DM tags a synthetic frame carries, as Gatan software names them, plus the generator's
/// own facts under `Synthesis`.
public func syntheticFrameTags(_ entry: SyntheticStudyEntry, session: SessionProfile) -> [String: DMTagInput] {
    let exposure = StudyNaming.exposure(forDose: entry.condition.dose, pixelScale: entry.condition.pixelScale)
    return [
        "Microscope Info.Indicated Magnification": .number(Double(StudyNaming.magnification(forPixelScale: entry.condition.pixelScale)) * 1000),
        "Microscope Info.Voltage": .number(300_000),
        "Microscope Info.Microscope": .text(StudyNaming.instrument),
        "DataBar.Exposure Time (s)": .number(exposure),
        "DataBar.Acquisition Date": .text("\(entry.date.month)/\(entry.date.day)/\(entry.date.year)"),
        "Synthesis.Material": .text(entry.condition.material.symbol),
        "Synthesis.Particle Size (nm)": .number(entry.condition.particleSize),
        "Synthesis.Dose (e/A2)": .number(entry.condition.dose),
        "Synthesis.Gain (counts per electron)": .number(session.gain),
        "Synthesis.Session": .integer(Int32(entry.session)),
    ]
}
