import Foundation
import Micrograph

/// The file format synthetic frames are written in.
public enum SyntheticFrameFormat: String, CaseIterable, Codable, Sendable {
    case dm3, dm4, tiff

    public var fileExtension: String { self == .tiff ? "tif" : rawValue }
}

/// A problem with a synthetic study's parameters, said in words a user can act on.
public struct SynthesisError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The option or path the problem concerns (`--sessions`, an output folder).
    public var subject: String
    public var reason: String
    public init(_ subject: String, _ reason: String) { self.subject = subject; self.reason = reason }
    public var description: String { "\(subject) \(reason)" }
}

/// Everything that decides a synthetic study: which conditions, how many sessions and frames,
/// the frame size and format, and the seed. The same plan gives the same files, byte for byte.
///
/// Layout, as the NERSC mirror: one folder per (session, material, particle size), named like
/// the study's (`StudyNaming.folderName`), holding that session's frames for every pixel scale
/// and dose, `K` frames each numbered 01...K; labels in `<Folder>/Labels/<stem>_label.png`;
/// `Dataset_metadata.csv` at the top in the study's format. Session `s` (from 0) is dated
/// `firstDate` + 7 s days and has its own camera gain and illumination (`SessionProfile`).
public struct SyntheticStudyPlan: Equatable, Codable, Sendable {
    public var sessions: Int
    public var framesPerCondition: Int
    /// Frame width and height (pixels).
    public var size: Int
    public var pixelScales: [Double]
    public var doses: [Double]
    public var particleSizes: [Double]
    public var materials: [Material]
    public var support: Support
    /// nil: each material's usual shape (CdSe oblong, Au and Ag spheres).
    public var shape: ParticleShape?
    public var format: SyntheticFrameFormat
    public var seed: UInt64
    public var firstDate: CalendarDate
    public var options: SynthesisOptions

    public init(sessions: Int = 1, framesPerCondition: Int = 1, size: Int = 1024,
                pixelScales: [Double] = [0.02, 0.042], doses: [Double] = [80, 423, 884],
                particleSizes: [Double] = [2.2, 5, 10], materials: [Material] = [.gold, .silver, .cadmiumSelenide],
                support: Support = .ultrathinCarbon, shape: ParticleShape? = nil,
                format: SyntheticFrameFormat = .dm3, seed: UInt64 = 1,
                firstDate: CalendarDate = CalendarDate(year: 2024, month: 1, day: 8),
                options: SynthesisOptions = SynthesisOptions()) {
        self.sessions = sessions
        self.framesPerCondition = framesPerCondition
        self.size = size
        self.pixelScales = pixelScales
        self.doses = doses
        self.particleSizes = particleSizes
        self.materials = materials
        self.support = support
        self.shape = shape
        self.format = format
        self.seed = seed
        self.firstDate = firstDate
        self.options = options
    }

    /// Checks every parameter and that no two frames would get the same name.
    /// - Throws: `SynthesisError` naming the parameter and the value that is wrong.
    public func validate() throws {
        guard sessions >= 1 else { throw SynthesisError("--sessions", "must be at least 1, got \(sessions)") }
        guard framesPerCondition >= 1 else {
            throw SynthesisError("--frames-per-condition", "must be at least 1, got \(framesPerCondition)")
        }
        guard (16...16384).contains(size) else { throw SynthesisError("--size", "must be between 16 and 16384 pixels, got \(size)") }
        func check(_ values: [Double], _ name: String, _ range: ClosedRange<Double>, _ unit: String) throws {
            guard !values.isEmpty else { throw SynthesisError("--\(name)", "needs at least one value") }
            for value in values where !(range.contains(value)) {
                throw SynthesisError("--\(name)", "\(formatStudyNumber(value)) is outside \(formatStudyNumber(range.lowerBound))...\(formatStudyNumber(range.upperBound)) \(unit)")
            }
            if Set(values).count != values.count { throw SynthesisError("--\(name)", "lists a value twice") }
        }
        try check(pixelScales, "pixel-scale", 0.002...2, "nm/px")
        try check(doses, "dose", 10...1_000_000, "e/A^2")
        try check(particleSizes, "particle-size", 0.5...500, "nm")
        guard !materials.isEmpty else { throw SynthesisError("--material", "needs at least one value") }
        if Set(materials).count != materials.count { throw SynthesisError("--material", "lists a value twice") }
        for scale in pixelScales {
            let smallestRadius = particleSizes.min()! / 2 / scale
            if smallestRadius < 2 {
                throw SynthesisError("--particle-size", "particles of \(formatStudyNumber(particleSizes.min()!)) nm at \(formatStudyNumber(scale)) nm/px would be under 4 pixels across")
            }
        }
        var names = Set<String>()
        let date = firstDate
        for scale in pixelScales {
            for dose in doses {
                let condition = SynthesisCondition(material: .gold, particleSize: 1, pixelScale: scale, dose: dose)
                let name = StudyNaming.fileName(date: date, condition: condition, number: 1, fileExtension: "x")
                if !names.insert(name).inserted {
                    throw SynthesisError("--pixel-scale/--dose", "pixel scale \(formatStudyNumber(scale)) nm/px and dose \(formatStudyNumber(dose)) e/A^2 give the same file name as another condition (\(name)); choose values further apart")
                }
            }
        }
    }

    /// Every frame of the study in a fixed order: session, material, particle size, pixel scale,
    /// dose, frame number.
    public var entries: [SyntheticStudyEntry] {
        var result = [SyntheticStudyEntry]()
        for session in 0..<sessions {
            let date = firstDate.adding(days: 7 * session)
            for material in materials {
                for particleSize in particleSizes {
                    let folder = StudyNaming.folderName(date: date, material: material, particleSize: particleSize,
                                                        support: support)
                    for pixelScale in pixelScales {
                        for dose in doses {
                            let condition = SynthesisCondition(material: material, particleSize: particleSize,
                                                               shape: shape, support: support,
                                                               pixelScale: pixelScale, dose: dose)
                            for number in 1...framesPerCondition {
                                let fileName = StudyNaming.fileName(date: date, condition: condition, number: number,
                                                                    fileExtension: format.fileExtension)
                                result.append(SyntheticStudyEntry(session: session, date: date, folder: folder,
                                                                  fileName: fileName, condition: condition,
                                                                  number: number))
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// The distinct conditions in the order `entries` meets them.
    public var conditions: [SynthesisCondition] {
        var seen = Set<SynthesisCondition>()
        return entries.compactMap { seen.insert($0.condition).inserted ? $0.condition : nil }
    }

    /// The camera and illumination of session `index`.
    public func session(_ index: Int) -> SessionProfile { SessionProfile(index: index, seed: seed) }

    /// The generator for one frame: derived from the seed, the session, the condition's
    /// canonical key and the frame number, so a frame never depends on which other conditions
    /// or sessions the plan holds.
    public func random(for entry: SyntheticStudyEntry) -> SplitMix64 {
        SplitMix64(seed: seed).derived(UInt64(entry.session))
            .derived(stableHash(entry.condition.canonicalKey)).derived(UInt64(entry.number))
    }

    /// Generates one entry's frame.
    public func frame(for entry: SyntheticStudyEntry) -> SyntheticFrame {
        SyntheticFrame(width: size, height: size, condition: entry.condition, session: session(entry.session),
                       options: options, random: random(for: entry))
    }

    /// The metadata table (header and one row per entry, `\n` line ends, a final line end).
    public var metadataTable: String {
        var lines = [StudyNaming.metadataHeader]
        for entry in entries {
            lines.append(StudyNaming.metadataRow(fileName: entry.fileName, date: entry.date,
                                                 condition: entry.condition, folder: entry.folder))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// One frame of a synthetic study: where it goes and what it shows.
public struct SyntheticStudyEntry: Equatable, Codable, Sendable {
    public var session: Int
    public var date: CalendarDate
    /// The session folder (the catalog's session), relative to the study's root.
    public var folder: String
    public var fileName: String
    public var condition: SynthesisCondition
    /// The frame's number within its condition, from 1.
    public var number: Int

    public var labelFileName: String { StudyNaming.labelFileName(forFrame: fileName) }
    /// `<folder>/<file name>`, relative to the study's root.
    public var framePath: String { "\(folder)/\(fileName)" }
    /// `<folder>/Labels/<stem>_label.png`, relative to the study's root.
    public var labelPath: String { "\(folder)/Labels/\(labelFileName)" }
}

extension SyntheticStudyPlan {
    /// Parses a comma-separated list of numbers ("0.02,0.042").
    /// - Throws: `SynthesisError` naming `option` and the item that is not a number.
    public static func numbers(from text: String, option: String) throws -> [Double] {
        try items(text, option).map { item in
            guard let value = Double(item), value.isFinite else {
                throw SynthesisError(option, "'\(item)' is not a number (expected a comma-separated list such as 0.02,0.042)")
            }
            return value
        }
    }

    /// Parses a comma-separated list of materials ("Au,Ag,CdSe", any case).
    public static func materials(from text: String, option: String = "--material") throws -> [Material] {
        try items(text, option).map { item in
            guard let material = Material(symbol: item) else {
                throw SynthesisError(option, "unknown material '\(item)' (known: \(Material.allCases.map(\.symbol).joined(separator: ", ")))")
            }
            return material
        }
    }

    private static func items(_ text: String, _ option: String) throws -> [String] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        if parts.contains(where: \.isEmpty) { throw SynthesisError(option, "empty item in '\(text)'") }
        return parts
    }
}

extension CalendarDate {
    /// Parses `YYYY-MM-DD`.
    /// - Throws: `SynthesisError` when the text is not a valid date.
    public init(iso text: String) throws {
        let parts = text.split(separator: "-").map { Int($0) }
        guard parts.count == 3, let year = parts[0], let month = parts[1], let day = parts[2],
              (1...12).contains(month), (1...31).contains(day) else {
            throw SynthesisError("--first-date", "'\(text)' is not a date of the form YYYY-MM-DD")
        }
        self.init(year: year, month: month, day: day)
        guard CalendarDate(daysSinceEpoch: daysSinceEpoch) == self else {
            throw SynthesisError("--first-date", "'\(text)' is not a date of the form YYYY-MM-DD (no such day)")
        }
    }
}
