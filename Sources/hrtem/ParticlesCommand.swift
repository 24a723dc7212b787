import ArgumentParser
import Catalog
import Foundation
import Micrograph
import Segmentation

struct ParticlesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "particles",
        abstract: "Measure the particles of a mask: count, area, equivalent and Feret diameters, shape; compare with a label.",
        discussion: """
        INPUT is a mask file (PNG, TIFF, NPY...; any non-zero pixel is particle), or a catalogued
        frame (id, 'session/file name', file name or path), whose label mask is then measured.
        Particles are 8-connected. Sizes are in nm when the pixel size is known: --pixel-size,
        else the catalog's pixel scale of the frame (INPUT's, or --frame's), else the length
        calibration in --frame's or the mask file's own header; else in px, and the columns say
        px. --nm refuses to give sizes in px.

        With --label, predicted particles are matched to the label's by IoU >= 0.5 (one to one):
        detected / missed / spurious, particle F1, and the size bias (mean equivalent diameter
        difference, matched-pair difference, two-sample Kolmogorov-Smirnov statistic).

        --out DIR writes <stem>_particles.csv, <stem>_histogram.svg and, with --label,
        <stem>_comparison.json.

        Examples:
          hrtem particles mask.png --frame frame.dm3 --out particles/
          hrtem particles mask.png --label truth.png --pixel-size 0.02 --json
          hrtem particles 20221109_Au_UTC_330kx_2640e_0p1596s_03.dm3
        """)

    @OptionGroup var data: DataOptions
    @Argument(help: "Mask file, or a catalogued frame (its label is measured).") var input: String
    @Option(help: "Label mask (file or catalogued frame) to compare with.") var label: String?
    @Option(help: "The raw frame the mask belongs to: its calibration (or catalog pixel scale) gives nm.") var frame: String?
    @Option(name: .customLong("pixel-size"), help: "Pixel size in nm (overrides any calibration).") var pixelSize: Double?
    @Flag(help: "Refuse unless sizes can be given in nm.") var nm = false
    @Option(help: "Folder for the CSV, the histogram SVG and the comparison JSON.") var out: String?
    @Flag(help: "Print the summary (and comparison) as JSON.") var json = false

    func validate() throws {
        if let pixelSize, !(pixelSize > 0 && pixelSize.isFinite) {
            throw ValidationError("--pixel-size must be a positive number of nm, got \(pixelSize)")
        }
    }

    func run() throws {
        let catalog = try FileManager.default.fileExists(atPath: data.folder.catalogFile.path)
            ? CatalogStore(folder: data.folder) : nil
        let source = try ParticleInput.resolve(input, catalog: catalog)
        var scaleNote = source.scaleNote
        var scale = source.nanometresPerPixel
        if let frame {
            let frameSource = try ParticleInput.calibration(of: frame, catalog: catalog)
            if let value = frameSource.nanometresPerPixel { scale = value; scaleNote = frameSource.scaleNote }
        }
        if let pixelSize { scale = pixelSize; scaleNote = "--pixel-size" }
        if nm && scale == nil {
            throw ValidationError("no pixel size for \(input): \(frame.map { "neither \($0) nor the mask" } ?? "the mask") has a length "
                                  + "calibration and the catalog has no pixel scale for it; give --pixel-size NM or --frame FRAME")
        }
        let lengthScale = LengthScale(nanometresPerPixel: scale)
        let mask = source.mask
        let analysis = findParticles(in: mask)
        var comparison: ParticleComparison?
        var truth: ParticleAnalysis?
        if let label {
            let labelSource = try ParticleInput.resolve(label, catalog: catalog)
            guard labelSource.mask.width == mask.width && labelSource.mask.height == mask.height else {
                throw ValidationError("\(label) is \(labelSource.mask.width) x \(labelSource.mask.height), "
                                      + "\(input) is \(mask.width) x \(mask.height): a label must match its mask")
            }
            truth = findParticles(in: labelSource.mask)
            comparison = compareParticles(predicted: analysis, truth: truth!, scale: lengthScale)
        }
        if analysis.particles.isEmpty && comparison == nil {
            throw ValidationError("\(source.description) has no particle pixels (every pixel is 0): no particle to measure")
        }
        let unit = lengthScale.unit
        let diameters = analysis.particles.map { $0.equivalentDiameter * lengthScale.lengthPerPixel }
        if let out {
            let folder = MatrixCLI.absoluteURL(out)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let stem = source.stem
            try writeFileAtomically(Data(ParticleTable.csv(analysis.particles, scale: lengthScale).utf8),
                                    to: folder.appendingPathComponent("\(stem)_particles.csv"))
            let svg = ParticleTable.histogramSVG(
                diameters: diameters, unit: unit, title: "\(stem): \(analysis.particles.count) particles",
                reference: truth.map { $0.particles.map { $0.equivalentDiameter * lengthScale.lengthPerPixel } })
            try writeFileAtomically(Data(svg.utf8), to: folder.appendingPathComponent("\(stem)_histogram.svg"))
            if let comparison {
                try writeFileAtomically(try CanonicalJSON.file(comparison), to: folder.appendingPathComponent("\(stem)_comparison.json"))
            }
        }
        let summary = ParticleSummary(file: source.description, unit: unit, pixelSizeNM: scale, particles: analysis.particles.count,
                                      touchingBorder: analysis.particles.filter(\.touchesBorder).count,
                                      meanEquivalentDiameter: diameters.isEmpty ? nil : diameters.reduce(0, +) / Double(diameters.count),
                                      comparison: comparison)
        if json {
            print(String(decoding: try CanonicalJSON.file(summary), as: UTF8.self), terminator: "")
            return
        }
        if scale == nil {
            FileHandle.standardError.write(Data("note: no pixel size known for \(input): sizes are in px (give --pixel-size or --frame for nm)\n".utf8))
        }
        print("\(source.description): \(analysis.particles.count) particles (\(summary.touchingBorder) touch the border), "
              + (summary.meanEquivalentDiameter.map { String(format: "mean equivalent diameter %.3f %@", $0, unit) } ?? "none")
              + (scale.map { String(format: ", %.5g nm/px from %@", $0, scaleNote ?? "") } ?? ", sizes in px"))
        if let comparison {
            print("against \(label!): detected \(comparison.detected), missed \(comparison.missed), spurious \(comparison.spurious), "
                  + String(format: "particle F1 %.4f", comparison.f1))
            if let difference = comparison.meanDiameterDifference, let ks = comparison.kolmogorovSmirnov {
                print(String(format: "size bias: mean diameter difference %+.3f %@", difference, unit)
                      + (comparison.matchedDiameterDifference.map { String(format: " (matched pairs %+.3f %@)", $0, unit) } ?? "")
                      + String(format: ", Kolmogorov-Smirnov %.4f", ks))
            } else {
                print("size bias: undefined (\(analysis.particles.isEmpty ? "the mask" : "the label") has no particle)")
            }
        }
    }
}

/// What `hrtem particles --json` prints.
struct ParticleSummary: Codable {
    var file: String
    var unit: String
    var pixelSizeNM: Double?
    var particles: Int
    var touchingBorder: Int
    var meanEquivalentDiameter: Double?
    var comparison: ParticleComparison?
}

/// A mask to measure and what is known of its pixel size.
struct ParticleInput {
    var mask: Raster<UInt8>
    var description: String
    var stem: String
    var nanometresPerPixel: Double?
    var scaleNote: String?

    /// A catalogued frame's label (with the catalog's pixel scale), else a mask file (with its
    /// own calibration, when it has a length unit).
    static func resolve(_ reference: String, catalog: CatalogStore?) throws -> ParticleInput {
        if let catalog, let record = try? FrameDetails.resolve(reference, in: catalog) {
            guard let labelPath = try catalog.labels(frameId: record.id!).compactMap(\.path).first else {
                throw ValidationError("\(record.session)/\(record.fileName) has no label in the catalog: give a mask file")
            }
            let mask = try readLabelMask(at: URL(fileURLWithPath: labelPath))
            return ParticleInput(mask: mask, description: "\(record.fileName) (label \(labelPath))",
                                 stem: stem(of: record.fileName), nanometresPerPixel: record.pixelScaleNm,
                                 scaleNote: record.pixelScaleNm == nil ? nil : "the catalog")
        }
        let url = URL(fileURLWithPath: reference)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ValidationError("\(reference): no such file\(catalog == nil ? "" : " and no such frame in the catalog")")
        }
        let mask = try readLabelMask(at: url)
        let own = (try? readMicrographHeader(at: url))?.nanometresPerPixel
        return ParticleInput(mask: mask, description: reference, stem: stem(of: url.lastPathComponent),
                             nanometresPerPixel: own, scaleNote: own == nil ? nil : "the file's calibration")
    }

    /// The pixel size of a raw frame: the catalog's pixel scale, else its header's calibration.
    static func calibration(of reference: String, catalog: CatalogStore?) throws -> (nanometresPerPixel: Double?, scaleNote: String?) {
        if let catalog, let record = try? FrameDetails.resolve(reference, in: catalog), let scale = record.pixelScaleNm {
            return (scale, "the catalog")
        }
        let url = URL(fileURLWithPath: reference)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ValidationError("\(reference): no such frame file\(catalog == nil ? "" : " and no such frame in the catalog")")
        }
        let own = try readMicrographHeader(at: url).nanometresPerPixel
        return (own, own == nil ? nil : "\(url.lastPathComponent)'s calibration")
    }

    static func stem(of name: String) -> String {
        let base = (name as NSString).deletingPathExtension
        return String(base.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
    }
}
