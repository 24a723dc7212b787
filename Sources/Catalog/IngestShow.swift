import Foundation
import GRDB
import Micrograph

/// Finding one frame from what a person types, and describing everything the catalog knows
/// about it (`hrtem show`).
public enum FrameDetails {
    /// Resolves `reference`: a frame id (`12` or `#12`), `session/file name` (the session may
    /// itself contain `/`), a file name that occurs in one session only, or the path of an
    /// ingested file (matched by path, then by content hash).
    /// - Throws: `FormatError` (file = the reference) saying why nothing or too much matched,
    ///   with the candidate sessions when a file name is ambiguous.
    public static func resolve(_ reference: String, in store: CatalogStore) throws -> FrameRecord {
        try store.dbQueue.read { db in
            let trimmed = reference.hasPrefix("#") ? String(reference.dropFirst()) : reference
            if let id = Int64(trimmed), let frame = try FrameRecord.fetchOne(
                db, sql: "SELECT \(CatalogStore.frameColumns) FROM frames WHERE id = ?", arguments: [id]) {
                return frame
            }
            if let slash = reference.lastIndex(of: "/") {
                let session = String(reference[..<slash]), file = String(reference[reference.index(after: slash)...])
                if let frame = try CatalogStore.frame(session: session, file: file, in: db) { return frame }
            }
            let byName = try FrameRecord.fetchAll(
                db, sql: "SELECT \(CatalogStore.frameColumns) FROM frames WHERE file_name = ?", arguments: [reference])
            if byName.count == 1 { return byName[0] }
            if byName.count > 1 {
                throw FormatError(file: reference, "the file name occurs in \(byName.count) sessions; say which: "
                                  + byName.map { "'\($0.session)/\($0.fileName)'" }.joined(separator: ", "))
            }
            let url = URL(fileURLWithPath: reference).standardizedFileURL
            if FileManager.default.fileExists(atPath: url.path) {
                let resolved = url.resolvingSymlinksInPath().path
                if let frame = try FrameRecord.fetchOne(
                    db, sql: "SELECT \(CatalogStore.frameColumns) FROM frames WHERE path IN (?, ?)", arguments: [url.path, resolved]) {
                    return frame
                }
                if let digest = try? sha256Hex(fileAt: url), let frame = try FrameRecord.fetchOne(
                    db, sql: "SELECT \(CatalogStore.frameColumns) FROM frames WHERE sha256 = ?", arguments: [digest]) {
                    return frame
                }
            }
            throw FormatError(file: reference, "no such frame in the catalog (give an id, 'session/file name', a file name or an ingested file's path)")
        }
    }

    /// What a micrograph file that is not in the catalog says about itself (`hrtem show FILE`):
    /// format, pixels, calibrations, microscope facts and every tag, as `render` prints them.
    /// - Throws: `FormatError` naming the file when it cannot be read.
    public static func renderFile(at url: URL, selecting selection: ImageSelection = ImageSelection()) throws -> String {
        let header = try readMicrographHeader(at: url, selecting: selection)
        var frame = FrameRecord(session: "(not in the catalog)", fileName: url.lastPathComponent)
        frame.path = url.path
        frame.byteSize = (try? url.resourceValues(forKeys: [.fileSizeKey]).fileSize).map(Int64.init)
        frame.format = header.format.rawValue
        frame.width = header.width
        frame.height = header.height
        frame.pixelType = header.pixelType.rawValue
        frame.pixelScaleNm = header.microscope.pixelSizeNM
        frame.magnificationKx = header.microscope.indicatedMagnification.map { $0 / 1000 }
        frame.exposureSeconds = header.microscope.exposureSeconds
        frame.dose = header.microscope.doseElectronsPerA2
        frame.facts = Ingester.factsJSON(header, modified: 0, metadataFrom: "file")
        return render(frame, labels: [])
    }

    /// Every column, the labels, and the file's facts and tags, as aligned text.
    public static func render(_ frame: FrameRecord, labels: [LabelRecord]) -> String {
        var lines = [String]()
        func add(_ name: String, _ value: String?) {
            guard let value, !value.isEmpty else { return }
            lines.append(name.padding(toLength: 22, withPad: " ", startingAt: 0) + value)
        }
        func number(_ value: Double?, _ unit: String = "") -> String? {
            value.map { FrameListing.number($0) + (unit.isEmpty ? "" : " " + unit) }
        }
        add("id", frame.id.map(String.init))
        add("session", frame.session)
        add("file", frame.fileName)
        add("material", frame.material)
        add("particle size", number(frame.particleSizeNm, "nm"))
        add("shape", frame.shape)
        add("support", frame.support)
        add("instrument", frame.instrument)
        add("dose", number(frame.dose, "e/A^2"))
        add("dose rate", number(frame.doseRate, "e/A^2/s"))
        add("exposure", number(frame.exposureSeconds, "s"))
        add("pixel scale", number(frame.pixelScaleNm, "nm/px"))
        add("magnification", number(frame.magnificationKx, "kx"))
        add("date", frame.date)
        if let source = frame.metadataSource {
            let row = frame.metadataRow.map { String($0) } ?? "?"
            add("metadata table", "\(source), row \(row)")
        }
        add("path", frame.path ?? "(not ingested)")
        add("size", frame.byteSize.map { "\($0) bytes" })
        add("sha256", frame.sha256)
        add("format", frame.format)
        if let width = frame.width, let height = frame.height { add("pixels", "\(width) x \(height) \(frame.pixelType ?? "")") }
        add("ingested at", frame.ingestedAt)
        for label in labels {
            var text = "\(label.source): \(label.path ?? "(no file)")"
            if let particles = label.particlePixels { text += ", \(particles) particle pixels" }
            if let width = label.width, let height = label.height { text += ", \(width) x \(height)" }
            add("label", text)
            add("  sha256", label.sha256)
            add("  labelbox", label.labelbox)
        }
        if labels.isEmpty { add("label", "(none)") }
        guard let factsText = frame.facts,
              let facts = try? JSONSerialization.jsonObject(with: Data(factsText.utf8)) as? [String: Any] else {
            return lines.joined(separator: "\n") + "\n"
        }
        add("metadata from", facts["metadata_from"] as? String)
        if let shape = facts["shape"] as? [Int] { add("shape", "\(shape) (slowest first)") }
        if let calibrations = facts["calibrations"] as? [[String: Any]] {
            add("calibrations", calibrations.map { "\($0["scale"] ?? "") \($0["unit"] ?? "")" }.joined(separator: ", "))
        }
        if let microscope = facts["microscope"] as? [String: Any] {
            for key in microscope.keys.sorted() { add("microscope " + key.replacingOccurrences(of: "_", with: " "), "\(microscope[key]!)") }
        }
        if let others = facts["other_images"] as? [[String: Any]] {
            for other in others { add("other image", "\(other["index"] ?? "") \(other["shape"] ?? "") \(other["pixel_type"] ?? "") \(other["note"] ?? "")") }
        }
        if let tags = facts["tags"] as? [String: String], !tags.isEmpty {
            lines.append("tags (\(tags.count)):")
            for key in tags.keys.sorted() { lines.append("  \(key) = \(tags[key]!)") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
