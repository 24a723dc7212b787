import ArgumentParser
import Foundation
import Synthesis

/// `hrtem synth`: synthetic HRTEM frames with exact labels, laid out like the study's mirror.
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Generate synthetic HRTEM frames with exact labels, laid out like the study's NERSC mirror.",
        discussion: """
        Writes <OUT>/<session folder>/<frame> in the study's file-name convention, \
        <folder>/Labels/<stem>_label.png (0/255), Dataset_metadata.csv in the study's format and \
        synthesis.json (plan and exact ground truth: particles, x-ray hits, session cameras). \
        One folder per session, material and particle size; in each, every pixel scale and dose, \
        --frames-per-condition frames each. Physics: lattice fringes at the material's real \
        spacings, mass-thickness contrast growing with Z and thickness, an amorphous support \
        texture, Poisson electron counting at dose x pixel area, per-session gain and uneven \
        illumination, rare x-ray hits. The same options and --seed give the same bytes.

        Examples:
          hrtem synth synthetic --sessions 2 --frames-per-condition 3 --size 512 --preview
          hrtem synth lowdose --dose 80,884 --pixel-scale 0.02 --particle-size 2.2 --material Au
          hrtem import-metadata synthetic/Dataset_metadata.csv && hrtem ingest synthetic
        """)

    @Argument(help: "Output folder (created; must be empty unless --overwrite).")
    var out: String

    @Option(help: "Number of microscope sessions (each its own date, camera gain and illumination).")
    var sessions: Int = 1

    @Option(name: .customLong("frames-per-condition"), help: "Frames per session and condition.")
    var framesPerCondition: Int = 1

    @Option(help: "Frame width and height in pixels.")
    var size: Int = 1024

    @Option(name: .customLong("pixel-scale"), help: "Pixel scales in nm/px, comma-separated.")
    var pixelScale: String = "0.02,0.042"

    @Option(help: "Electron doses in e/A^2, comma-separated.")
    var dose: String = "80,423,884"

    @Option(name: .customLong("particle-size"), help: "Particle diameters in nm, comma-separated.")
    var particleSize: String = "2.2,5,10"

    @Option(help: "Materials, comma-separated: Au, Ag, CdSe.")
    var material: String = "Au,Ag,CdSe"

    @Option(help: "Support film: 'UT Carbon' (UTC) or SiN.")
    var support: String = "UT Carbon"

    @Option(help: "Particle shape: auto (CdSe oblong, others spheres), sphere or oblong.")
    var shape: String = "auto"

    @Option(help: "Frame file format: dm3, dm4 or tiff (tif).")
    var format: SyntheticFrameFormat = .dm3

    @Option(help: "Seed of every random choice.")
    var seed: UInt64 = 1

    @Option(help: "Fraction of the field the particles aim to cover.")
    var coverage: Double = 0.2

    @Option(name: .customLong("xray-rate"), help: "Expected x-ray hits per million pixels.")
    var xrayRate: Double = 8

    @Option(name: .customLong("first-date"), help: "Date of the first session (YYYY-MM-DD); later sessions follow weekly.")
    var firstDate: String = "2024-01-08"

    @Flag(help: "Also write preview.png: one frame per condition with its label outlined.")
    var preview = false

    @Flag(help: "Replace the files of an earlier run in OUT.")
    var overwrite = false

    @Flag(help: "Print only the summary.")
    var quiet = false

    func makePlan() throws -> SyntheticStudyPlan {
        guard let supportFilm = Support(name: support) else {
            throw ValidationError("--support must be 'UT Carbon' (or UTC) or SiN, got '\(support)'")
        }
        var particleShape: ParticleShape?
        if shape.lowercased() != "auto" {
            guard let parsed = ParticleShape(name: shape) else {
                throw ValidationError("--shape must be auto, sphere or oblong, got '\(shape)'")
            }
            particleShape = parsed
        }
        guard coverage >= 0 && coverage <= 0.6 else { throw ValidationError("--coverage must be between 0 and 0.6") }
        guard xrayRate >= 0 && xrayRate <= 10000 else { throw ValidationError("--xray-rate must be between 0 and 10000") }
        do {
            let plan = SyntheticStudyPlan(
                sessions: sessions, framesPerCondition: framesPerCondition, size: size,
                pixelScales: try SyntheticStudyPlan.numbers(from: pixelScale, option: "--pixel-scale"),
                doses: try SyntheticStudyPlan.numbers(from: dose, option: "--dose"),
                particleSizes: try SyntheticStudyPlan.numbers(from: particleSize, option: "--particle-size"),
                materials: try SyntheticStudyPlan.materials(from: material),
                support: supportFilm, shape: particleShape, format: format, seed: seed,
                firstDate: try CalendarDate(iso: firstDate),
                options: SynthesisOptions(coverage: coverage, xrayHitsPerMegapixel: xrayRate))
            try plan.validate()
            return plan
        } catch let error as SynthesisError {
            throw ValidationError(error.description)
        }
    }

    func validate() throws { _ = try makePlan() }

    func run() throws {
        let plan = try makePlan()
        let root = URL(fileURLWithPath: out)
        let started = Date()
        let summary = try writeSyntheticStudy(plan, to: root, preview: preview, overwrite: overwrite) { done, total, entry in
            if !quiet { FileHandle.standardError.write(Data("[\(done)/\(total)] \(entry.framePath)\n".utf8)) }
        }
        let seconds = Date().timeIntervalSince(started)
        print("wrote \(summary.frames) frames and labels in \(summary.folders.count) session folders to \(root.path) (\(String(format: "%.1f", seconds)) s)")
        print("metadata table: \(summary.metadataTable.path)")
        print("ground truth:   \(summary.groundTruth.path)")
        if let previewURL = summary.preview { print("preview:        \(previewURL.path)") }
        print("next: hrtem import-metadata \(summary.metadataTable.path) && hrtem ingest \(root.path)")
    }
}

extension SyntheticFrameFormat: ExpressibleByArgument {
    public init?(argument: String) {
        let name = argument.lowercased()
        self.init(rawValue: name == "tif" ? "tiff" : name)
    }
}
