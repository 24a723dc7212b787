import Foundation

/// The study's naming conventions, reproduced so synthetic data can be imported and ingested
/// exactly like the real data.
///
/// File names: `YYYYMMDD_<Material>_<Support>_<Mag>kx_<R>e_<T>s_<NN>.dm3`, where `<R>` is the dose
/// rate (e/A^2/s), `<T>` the exposure (s) with `p` for the decimal point, and dose = R x T.
/// (Synthesis cannot use the Catalog's parser: Catalog comes later in the module order.)
public enum StudyNaming {
    /// The indicated magnification (kx) the study's TEAM 0.5 / OneView set-up used for a pixel
    /// scale: 0.02 -> 330, 0.026 -> 260, 0.033 -> 205, 0.042 -> 160; any other pixel scale p gets
    /// round(6.6 / p), the same camera constant (0.02 nm/px at 330kx).
    public static func magnification(forPixelScale pixelScale: Double) -> Int {
        let known: [(Double, Int)] = [(0.02, 330), (0.026, 260), (0.033, 205), (0.042, 160)]
        if let match = known.first(where: { abs($0.0 - pixelScale) < 1e-9 }) { return match.1 }
        return Int((6.6 / pixelScale).rounded())
    }

    /// The exposure (s) the study would have used for a dose at a pixel scale: the shortest of
    /// 0.0798 x 2^k s (0.0798, 0.1596, 0.3192, ...) whose dose rate stays within what the
    /// microscope delivered at that magnification, about 2850 e/A^2/s at 205kx and above
    /// (pixel scale < 0.035 nm/px) and 1800 e/A^2/s at 160kx. This reproduces every dated
    /// file name of the study's metadata table (80 -> 0.0798 s, 423 -> 0.1596 s, 884 ->
    /// 0.3192 s; 418 at 0.042 nm/px -> 0.3192 s).
    public static func exposure(forDose dose: Double, pixelScale: Double) -> Double {
        let largestRate = pixelScale < 0.035 ? 2850.0 : 1800.0
        var exposure = 0.0798
        for _ in 0..<16 where dose / exposure > largestRate { exposure *= 2 }
        return exposure
    }

    /// The dose rate the file name carries for a dose and exposure: rounded to a multiple of 10
    /// as the study's names are (2650 x 0.1596 = 423) when that keeps R x T within 0.5% of the
    /// dose, else to a whole number.
    public static func doseRate(forDose dose: Double, exposure: Double) -> Int {
        let exact = dose / exposure
        let tens = Int((exact / 10).rounded()) * 10
        if tens > 0, abs(Double(tens) * exposure - dose) <= 0.005 * dose { return tens }
        return max(1, Int(exact.rounded()))
    }

    /// `0.1596` -> `"0p1596"`.
    public static func exposureText(_ exposure: Double) -> String {
        formatStudyNumber(exposure).replacingOccurrences(of: ".", with: "p")
    }

    /// A frame's file name in the study's convention, e.g.
    /// `20240108_Au_UTC_330kx_2650e_0p1596s_01.dm3`.
    /// - Parameters:
    ///   - number: the frame's number within its condition, from 1 (two digits at least).
    ///   - fileExtension: without the dot (`dm3`, `dm4`, `tif`).
    public static func fileName(date: CalendarDate, condition: SynthesisCondition, number: Int,
                                fileExtension: String) -> String {
        let exposure = exposure(forDose: condition.dose, pixelScale: condition.pixelScale)
        let rate = doseRate(forDose: condition.dose, exposure: exposure)
        let numberText = number < 10 ? "0\(number)" : "\(number)"
        return "\(date.compact)_\(condition.material.symbol)_\(condition.support.fileNameCode)_"
            + "\(magnification(forPixelScale: condition.pixelScale))kx_\(rate)e_\(exposureText(exposure))s_"
            + "\(numberText).\(fileExtension)"
    }

    /// The label's file name for a frame file name: `<stem>_label.png`.
    public static func labelFileName(forFrame fileName: String) -> String {
        let stem = fileName.split(separator: ".", omittingEmptySubsequences: false).dropLast().joined(separator: ".")
        return "\(stem.isEmpty ? fileName : stem)_label.png"
    }

    /// A session folder named as the study names them ("2021_10_06 2p2nm Au nanoparticles on
    /// UTC"), marked `synthetic` so it can never be mistaken for a real session.
    public static func folderName(date: CalendarDate, material: Material, particleSize: Double,
                                  support: Support) -> String {
        let size = formatStudyNumber(particleSize).replacingOccurrences(of: ".", with: "p")
        return "\(date.underscored) \(size)nm \(material.symbol) nanoparticles on \(support.fileNameCode) synthetic"
    }

    /// The metadata table's header, exactly as the study's `Dataset_metadata.csv` has it.
    public static let metadataHeader =
        "File name,Date,Material,Nanoparticle Size (nm),Nanoparticle Shape,Support,Instrument,Dosage (e/A2),Pixel Scale (nm),Folder"

    /// The instrument the study names (TEAM 0.5).
    public static let instrument = "Team05"

    /// One row of the metadata table (no line break), fields quoted only when they must be.
    public static func metadataRow(fileName: String, date: CalendarDate, condition: SynthesisCondition,
                                   folder: String) -> String {
        [fileName, date.slashed, condition.material.symbol, formatStudyNumber(condition.particleSize),
         condition.shape.rawValue, condition.support.rawValue, instrument, formatStudyNumber(condition.dose),
         formatStudyNumber(condition.pixelScale), folder].map(csvField).joined(separator: ",")
    }

    static func csvField(_ text: String) -> String {
        guard text.contains(",") || text.contains("\"") || text.contains("\n") else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// A calendar date without a time zone, with the three spellings the study uses.
public struct CalendarDate: Hashable, Codable, Sendable, Comparable {
    public var year: Int
    public var month: Int
    public var day: Int

    public init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// The date `days` after this one (proleptic Gregorian calendar).
    public func adding(days: Int) -> CalendarDate {
        CalendarDate(daysSinceEpoch: daysSinceEpoch + days)
    }

    /// `20240108` (file names).
    public var compact: String { "\(year)\(twoDigits(month))\(twoDigits(day))" }
    /// `2024_01_08` (folder names).
    public var underscored: String { "\(year)_\(twoDigits(month))_\(twoDigits(day))" }
    /// `01/08/24` (the metadata table's MM/DD/YY).
    public var slashed: String { "\(twoDigits(month))/\(twoDigits(day))/\(twoDigits(((year % 100) + 100) % 100))" }

    public static func < (a: CalendarDate, b: CalendarDate) -> Bool { a.daysSinceEpoch < b.daysSinceEpoch }

    /// Days since 1970-01-01 (H. Hinnant's days_from_civil).
    public var daysSinceEpoch: Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The inverse of `daysSinceEpoch` (H. Hinnant's civil_from_days).
    public init(daysSinceEpoch days: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        self.init(year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month: month, day: day)
    }
}

private func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
