import Foundation
import GRDB
import Micrograph
import Mirrors

/// What a Labelbox import did.
public struct LabelboxImportReport: Sendable, Equatable {
    public struct Unplaced: Sendable, Equatable {
        /// 1-based line of the NDJSON file.
        public var line: Int
        public var reference: String
        public var reason: String
    }

    public var rows = 0
    public var added = 0
    public var changed = 0
    public var unchanged = 0
    public var unplaced: [Unplaced] = []

    public var summary: String {
        var lines = ["labelbox: \(rows) data row(s): \(added) label(s) new, \(changed) changed, \(unchanged) unchanged"]
        if !unplaced.isEmpty {
            lines.append("could not place \(unplaced.count) row(s):")
            lines += unplaced.map { "  line \($0.line) (\($0.reference)): \($0.reason)" }
        }
        return lines.joined(separator: "\n")
    }
}

/// Imports a Labelbox NDJSON export (one data row per line) as labels of catalog frames.
///
/// Each row's `data_row.external_id` (else `global_key`) names the frame: its file name or
/// stem (any extension; a `<Folder>/<file>` form also gives the session). When the stem
/// occurs in several sessions the row is listed as ambiguous, not guessed. Masks come from
/// local files under `masksFolder`: for each object, `<feature_id>.png`, else the URL's last
/// path component (with or without `.png`), else a relative path given as the URL; composite
/// masks (`composite_mask` with `color_rgb`) are looked up the same way by their URL and the
/// label id. A mask path that is absolute or climbs out of `masksFolder` (`../`) is refused.
/// With a `maskFetcher` (the user's API key), masks not found locally are downloaded from
/// their URLs through the mirrors' `Downloader` (retries, content-addressed store) before
/// anything is written; neither the URLs nor the key are kept anywhere.
/// Object masks are combined (any non-zero pixel of any object is particle), written as a
/// 0/255 PNG into the data folder's content-addressed store (`store/ab/<sha256>`, so no name
/// from the export ever becomes a path), and recorded with source `labelbox` and the Labelbox
/// ids (data row, global key, external id, project, label, features) in one transaction.
/// Re-importing the same export changes nothing.
public struct LabelboxImporter: Sendable {
    public var dataFolder: DataFolder
    public var masksFolder: URL
    /// Downloads masks missing locally; nil: local files only.
    public var maskFetcher: LabelboxMaskFetcher?

    public init(dataFolder: DataFolder, masksFolder: URL, maskFetcher: LabelboxMaskFetcher? = nil) {
        self.dataFolder = dataFolder
        self.masksFolder = masksFolder.standardizedFileURL
        self.maskFetcher = maskFetcher
    }

    /// One data row of the export, parsed.
    struct Row {
        var line: Int
        var object: [String: Any]
        var dataRow: [String: Any]
        var reference: String
        var names: [String]
    }

    /// A mask the export names by URL and that is not among the local files.
    struct RemoteMask {
        var url: String
        var line: Int
        var reference: String
        var objectID: String
    }

    struct Match {
        var frame: FrameRecord
        var mask: Raster<UInt8>
        var ids: [String: Any]
        var line: Int
    }

    /// - Throws: `FormatError` with the line for a line that is not JSON or lacks `data_row`
    ///   (nothing is written then); `LabelboxFetchError` naming the row of a mask that could not
    ///   be downloaded (nothing is written then); `DatabaseError`. Rows that cannot be placed are
    ///   listed.
    public func importExport(_ data: Data, source: String, into store: CatalogStore) throws -> LabelboxImportReport {
        var report = LabelboxImportReport()
        var rows = [Row]()
        let text = String(decoding: data, as: UTF8.self)
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = index + 1
            let trimmed = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
                throw FormatError(file: source, line: line, column: 1, "not a JSON object (an NDJSON export has one data row per line)")
            }
            guard let dataRow = object["data_row"] as? [String: Any] else {
                throw FormatError(file: source, line: line, column: 1, "no \"data_row\" object: not a Labelbox export row")
            }
            let externalID = dataRow["external_id"] as? String
            let globalKey = dataRow["global_key"] as? String
            rows.append(Row(line: line, object: object, dataRow: dataRow,
                            reference: externalID ?? globalKey ?? (dataRow["id"] as? String) ?? "?",
                            names: [externalID, globalKey].compactMap { $0 }))
        }
        report.rows = rows.count
        var frames = [Int: FrameRecord]()
        var matches = [Match]()
        var problems = [Int: Problem]()
        for row in rows {
            do { frames[row.line] = try findFrame(names: row.names, in: store) } catch let problem as Problem { problems[row.line] = problem }
        }
        // Every download before any mask is built, so that a refused or expired URL stops the
        // import before anything is written.
        let fetched = try fetchRemoteMasks(rows.filter { frames[$0.line] != nil }, source: source)
        for row in rows {
            do {
                if let problem = problems[row.line] { throw problem }
                let frame = frames[row.line]!
                let (mask, ids) = try buildMask(object: row.object, dataRow: row.dataRow, frame: frame, fetched: fetched)
                matches.append(Match(frame: frame, mask: mask, ids: ids, line: row.line))
            } catch let problem as Problem {
                report.unplaced.append(.init(line: row.line, reference: row.reference, reason: problem.reason))
            }
        }
        // Files first (content-addressed, so a crash leaves only unreferenced blobs), then one transaction.
        var prepared = [(Match, String, String)]()
        for match in matches {
            let url = try storeMask(match.mask)
            prepared.append((match, url.path, url.lastPathComponent))
        }
        try store.dbQueue.write { db in
            for (match, path, digest) in prepared {
                guard let frameId = match.frame.id else { continue }
                let idsJSON = String(decoding: try JSONSerialization.data(withJSONObject: match.ids, options: [.sortedKeys]), as: UTF8.self)
                let existing = try LabelRecord.filter(Column("frame_id") == frameId && Column("source") == "labelbox").fetchOne(db)
                if let existing, existing.sha256 == digest, existing.labelbox == idsJSON {
                    report.unchanged += 1
                    continue
                }
                try CatalogStore.upsertLabel(LabelRecord(frameId: frameId, source: "labelbox", path: path, sha256: digest, format: "png",
                                                         width: match.mask.width, height: match.mask.height,
                                                         particlePixels: match.mask.pixels.reduce(0) { $0 + Int($1) },
                                                         labelbox: idsJSON), in: db)
                if existing == nil { report.added += 1 } else { report.changed += 1 }
            }
        }
        return report
    }

    struct Problem: Error { var reason: String }

    func findFrame(names: [String], in store: CatalogStore) throws -> FrameRecord {
        guard !names.isEmpty else { throw Problem(reason: "the data row has neither external_id nor global_key") }
        var tried = [String]()
        for name in names {
            var session: String?
            var file = name
            if let slash = name.lastIndex(of: "/") {
                session = String(name[..<slash])
                file = String(name[name.index(after: slash)...])
            }
            let stem = Self.stem(file)
            guard !stem.isEmpty else { continue }
            let frames = try store.dbQueue.read { db in
                try FrameRecord.fetchAll(db, sql: "SELECT \(CatalogStore.frameColumns) FROM frames WHERE file_name = ? OR file_name LIKE ? ESCAPE '\\'",
                                         arguments: [file, Self.likePattern(stem) + ".%"])
            }.filter { Self.stem($0.fileName) == stem }
            let inSession = session.map { s in frames.filter { $0.session == s } } ?? frames
            if inSession.count == 1 { return inSession[0] }
            if inSession.count > 1 {
                throw Problem(reason: "'\(stem)' is in \(inSession.count) sessions ("
                              + inSession.map { "'\($0.session)'" }.joined(separator: ", ") + "); name the session as <Folder>/<file> in the global key")
            }
            tried.append(name)
        }
        throw Problem(reason: "no catalog frame named like " + tried.map { "'\($0)'" }.joined(separator: " or "))
    }

    /// `a_b_03.dm3` -> `a_b_03`; `a_b_03_label.png` -> `a_b_03`.
    static func stem(_ file: String) -> String {
        var stem = file
        if let dot = stem.lastIndex(of: "."), dot != stem.startIndex { stem = String(stem[..<dot]) }
        if stem.hasSuffix("_label") { stem = String(stem.dropLast(6)) }
        return stem
    }

    static func likePattern(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
    }

    func buildMask(object: [String: Any], dataRow: [String: Any], frame: FrameRecord,
                   fetched: [String: URL] = [:]) throws -> (Raster<UInt8>, [String: Any]) {
        var ids: [String: Any] = [:]
        if let v = dataRow["id"] as? String { ids["data_row_id"] = v }
        if let v = dataRow["global_key"] as? String { ids["global_key"] = v }
        if let v = dataRow["external_id"] as? String { ids["external_id"] = v }
        let attributes = object["media_attributes"] as? [String: Any]
        var width = frame.width ?? (attributes?["width"] as? Int)
        var height = frame.height ?? (attributes?["height"] as? Int)
        var combined: [UInt8]?
        var features = [String]()
        let projects = (object["projects"] as? [String: Any]) ?? [:]
        for projectID in projects.keys.sorted() {
            guard let project = projects[projectID] as? [String: Any] else { continue }
            for label in (project["labels"] as? [[String: Any]]) ?? [] {
                ids["project_id"] = projectID
                if let name = project["name"] as? String { ids["project_name"] = name }
                let labelID = label["id"] as? String
                if let labelID { ids["label_id"] = labelID }
                let annotations = label["annotations"] as? [String: Any]
                for item in (annotations?["objects"] as? [[String: Any]]) ?? [] {
                    let featureID = item["feature_id"] as? String ?? ""
                    let objectMask: Raster<UInt8>
                    if let mask = item["mask"] as? [String: Any],
                       let url = try maskFile(url: mask["url"] as? String, ids: [featureID], objectID: featureID, fetched: fetched) {
                        objectMask = try readMaskFile(url)
                    } else if let composite = item["composite_mask"] as? [String: Any],
                              let rgb = composite["color_rgb"] as? [Int], rgb.count == 3, rgb.allSatisfy({ (0...255).contains($0) }),
                              let url = try maskFile(url: composite["url"] as? String, ids: [labelID ?? ""], objectID: featureID, fetched: fetched) {
                        do {
                            objectMask = try readClassMask(at: url, colorMap: [RGBColor(UInt8(rgb[0]), UInt8(rgb[1]), UInt8(rgb[2])): 1])
                        } catch { throw Problem(reason: "\(error)") }
                    } else if item["mask"] != nil || item["composite_mask"] != nil {
                        throw Problem(reason: "mask of object '\(featureID)' not found under \(masksFolder.path) (looked for \(featureID).png and the mask URL's file name)"
                                      + (maskFetcher == nil ? "; set LABELBOX_API_KEY to download it from its URL" : ""))
                    } else {
                        continue  // not a segmentation object (a box, a point): nothing to add to the mask
                    }
                    if width == nil || height == nil { width = objectMask.width; height = objectMask.height }
                    guard objectMask.width == width, objectMask.height == height else {
                        throw Problem(reason: "mask of object '\(featureID)' is \(objectMask.width) x \(objectMask.height), the frame is \(width!) x \(height!)")
                    }
                    if combined == nil { combined = [UInt8](repeating: 0, count: width! * height!) }
                    for i in 0..<objectMask.pixels.count where objectMask.pixels[i] != 0 { combined![i] = 1 }
                    features.append(featureID)
                }
            }
        }
        guard let width, let height else { throw Problem(reason: "no mask and no image size: nothing to import") }
        ids["feature_ids"] = features
        return (Raster(width: width, height: height, pixels: combined ?? [UInt8](repeating: 0, count: width * height)), ids)
    }

    /// The file holding a mask: a local file under the masks folder, else the download of its URL.
    /// - Throws: `Problem` for a local path that is refused, or a URL the API key may not go to.
    func maskFile(url: String?, ids: [String], objectID: String, fetched: [String: URL]) throws -> URL? {
        if let local = try locate(candidates(url: url, ids: ids)) { return local }
        guard let url, let maskFetcher, LabelboxMaskFetcher.isRemote(url) else { return nil }
        if let file = fetched[url] { return file }
        if !maskFetcher.mayReceiveKey(url) {
            throw Problem(reason: "the mask URL of object '\(objectID)' is not a Labelbox address: the API key is only sent to "
                          + maskFetcher.trustedDescription)
        }
        return nil
    }

    /// The mask URLs of a row's segmentation objects, with the ids a local file may be named by.
    func maskReferences(_ object: [String: Any]) -> [(url: String, ids: [String], objectID: String)] {
        var references = [(url: String, ids: [String], objectID: String)]()
        let projects = (object["projects"] as? [String: Any]) ?? [:]
        for projectID in projects.keys.sorted() {
            guard let project = projects[projectID] as? [String: Any] else { continue }
            for label in (project["labels"] as? [[String: Any]]) ?? [] {
                let labelID = label["id"] as? String ?? ""
                let annotations = label["annotations"] as? [String: Any]
                for item in (annotations?["objects"] as? [[String: Any]]) ?? [] {
                    let featureID = item["feature_id"] as? String ?? ""
                    if let url = (item["mask"] as? [String: Any])?["url"] as? String {
                        references.append((url, [featureID], featureID))
                    } else if let url = (item["composite_mask"] as? [String: Any])?["url"] as? String {
                        references.append((url, [labelID], featureID))
                    }
                }
            }
        }
        return references
    }

    /// Downloads every mask of `rows` that is not a local file, at once (in parallel, with
    /// retries); returns the stored file of each URL.
    /// - Throws: `LabelboxFetchError` naming the first row (in file order) whose mask could not
    ///   be fetched: an expired link or a refused key asks for a new export.
    func fetchRemoteMasks(_ rows: [Row], source: String) throws -> [String: URL] {
        guard let maskFetcher else { return [:] }
        var wanted = [RemoteMask]()
        var seen = Set<String>()
        for row in rows {
            for reference in maskReferences(row.object) {
                guard LabelboxMaskFetcher.isRemote(reference.url), maskFetcher.mayReceiveKey(reference.url),
                      // Neither found locally nor refused (a refusal is reported with the row).
                      (try? locate(candidates(url: reference.url, ids: reference.ids))) == .some(nil),
                      seen.insert(reference.url).inserted else { continue }
                wanted.append(RemoteMask(url: reference.url, line: row.line, reference: row.reference, objectID: reference.objectID))
            }
        }
        return try maskFetcher.fetch(wanted, source: source)
    }

    /// Relative names to try under the masks folder, in order.
    func candidates(url: String?, ids: [String]) -> [String] {
        var names = ids.filter { !$0.isEmpty }.map { $0 + ".png" }
        if let url, !url.isEmpty {
            if let parsed = URL(string: url), let scheme = parsed.scheme, scheme == "http" || scheme == "https" {
                let last = parsed.lastPathComponent
                if !last.isEmpty && last != "/" { names += [last, last + ".png"] }
            } else {
                names.insert(url.hasPrefix("file://") ? String(url.dropFirst(7)) : url, at: 0)
            }
        }
        return names
    }

    /// The first candidate that exists inside the masks folder.
    /// - Throws: `Problem` when a candidate is absolute or leaves the folder.
    func locate(_ names: [String]) throws -> URL? {
        let base = masksFolder.resolvingSymlinksInPath().path
        for name in names {
            guard !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
                throw Problem(reason: "mask path '\(name)' is absolute or leaves the masks folder: refused")
            }
            let url = masksFolder.appendingPathComponent(name).standardizedFileURL
            let resolved = url.resolvingSymlinksInPath().path
            guard resolved == base || resolved.hasPrefix(base + "/") else {
                throw Problem(reason: "mask path '\(name)' resolves outside the masks folder: refused")
            }
            if FileManager.default.fileExists(atPath: resolved) { return URL(fileURLWithPath: resolved) }
        }
        return nil
    }

    func readMaskFile(_ url: URL) throws -> Raster<UInt8> {
        do { return try readLabelMask(at: url) } catch { throw Problem(reason: "\(error)") }
    }

    /// Writes the 0/1 mask as a 0/255 PNG into `store/<2 hex>/<sha256>`; returns its URL.
    func storeMask(_ mask: Raster<UInt8>) throws -> URL {
        let temporary = dataFolder.temporaryFolder.appendingPathComponent("labelbox-\(UUID().uuidString).png")
        try writePNG(gray8: mask.map { $0 == 0 ? 0 : 255 }, to: temporary)
        defer { try? FileManager.default.removeItem(at: temporary) }
        let digest = try sha256Hex(fileAt: temporary)
        let destination = dataFolder.storeFolder.appendingPathComponent(String(digest.prefix(2))).appendingPathComponent(digest)
        if !FileManager.default.fileExists(atPath: destination.path) {
            try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
            if rename(temporary.path, destination.path) != 0 {
                throw FormatError(file: destination.path, "cannot move the mask into the store: \(String(cString: strerror(errno)))")
            }
        }
        return destination
    }
}
