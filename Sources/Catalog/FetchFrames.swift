import Foundation
import GRDB
import Micrograph
import Mirrors

/// One file a fetch will get: a frame or its label, where it is on the mirror, and the request.
public struct FetchItem: Sendable {
    public enum Kind: String, Sendable { case frame, label }
    public var kind: Kind
    public var frame: FrameRecord
    /// Path on the mirror (`<Folder>/<File name>` or `<Folder>/Labels/<stem>_label.png`).
    public var remotePath: RemotePath
    public var request: DownloadRequest
    /// Whether the store already holds this file under the SHA-256 the catalog recorded.
    public var alreadyStored: Bool
    /// A local copy the catalog already points at (e.g. from `hrtem ingest`) whose size matches
    /// the record: such a frame is not downloaded again.
    public var localCopy: URL?

    /// Nothing to transfer: stored, or present where the catalog says.
    public var isPresent: Bool { alreadyStored || localCopy != nil }
}

/// What recording fetched files in the catalog did.
public struct FetchRecordReport: Sendable {
    public init() {}
    public var framesRecorded = 0
    public var labelsRecorded = 0
    /// Files stored and recorded, but whose header could not be read (e.g. an HTML error page
    /// served with status 200 by a mirror that publishes no digest): file and reason.
    public var unreadable: [String] = []
}

/// The glue between a query and the downloader: which files a query selects on a mirror, and
/// how fetched files are recorded (path, size, SHA-256 of the stored file; format, width,
/// height and pixel type from the header; labels with their particle-pixel count).
///
/// Verification: the SHA-256 recorded at the first download is required to match on every
/// later download (NERSC publishes no digests); files already stored under that digest are
/// skipped.
public enum FrameFetcher {
    /// The label source fetched labels are recorded under (the same PNG a local ingest finds).
    public static let labelSource = "png"

    /// The frames (and labels) `query` selects, as requests on `client`'s mirror.
    /// - Throws: `QueryError` for a bad query, `MirrorError` for a mirror without a frame layout
    ///   or a session/file name that is not a safe path.
    public static func plan(query: String, labels: Bool, catalog: CatalogStore, client: MirrorClient) throws -> [FetchItem] {
        guard client.definition.layout != .dryad else {
            throw MirrorError.badDefinition(client.definition.name,
                                            "publishes processed HDF5 datasets, not frames; use `hrtem mirror get \(client.definition.name) ...`")
        }
        let frames = try catalog.frames(matching: query)
        let store = client.downloader.store
        var items: [FetchItem] = []
        for frame in frames {
            let framePath = try MirrorDefinition.framePath(folder: frame.session, file: frame.fileName)
            let expected = ExpectedContent(size: frame.byteSize, sha256: frame.sha256)
            var request = client.request(for: framePath, expected: expected)
            request.key = framePath.description
            items.append(FetchItem(kind: .frame, frame: frame, remotePath: framePath, request: request,
                                   alreadyStored: expected.sha256.flatMap { store.lookup(sha256: $0, size: expected.size) } != nil,
                                   localCopy: presentCopy(path: frame.path, size: frame.byteSize, sha256: frame.sha256)))
            guard labels, let id = frame.id else { continue }
            let labelPath = try MirrorDefinition.labelPath(folder: frame.session, file: frame.fileName)
            let recorded = try catalog.labels(frameId: id).first { $0.source == labelSource }
            let labelExpected = ExpectedContent(sha256: recorded?.sha256)
            items.append(FetchItem(kind: .label, frame: frame, remotePath: labelPath,
                                   request: client.request(for: labelPath, expected: labelExpected),
                                   alreadyStored: labelExpected.sha256.flatMap { store.lookup(sha256: $0) } != nil,
                                   localCopy: presentCopy(path: recorded?.path, size: nil, sha256: recorded?.sha256)))
        }
        return items
    }

    /// The recorded local file, when it exists with its recorded size (and a digest was recorded,
    /// i.e. it was hashed when it was ingested).
    private static func presentCopy(path: String?, size: Int64?, sha256: String?) -> URL? {
        guard let path, sha256 != nil,
              let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              attributes[.type] as? FileAttributeType == .typeRegular else { return nil }
        if let size, (attributes[.size] as? NSNumber)?.int64Value != size { return nil }
        return URL(fileURLWithPath: path)
    }

    /// Records one fetched (or skipped) file in the catalog, in its own transaction, so a fetch
    /// that is interrupted keeps the records of the files it finished. Readable files go through
    /// ingest's per-file recording (`Ingester.record` / `recordLabel`: header, facts, metadata
    /// joins, label particle count), exactly as `hrtem ingest` would record them; a file whose
    /// header cannot be read still gets its path, size and SHA-256 (and is reported).
    /// - Throws: `DatabaseError` when the catalog cannot be written.
    public static func record(_ item: FetchItem, file: StoredFile, in catalog: CatalogStore,
                              report: inout FetchRecordReport) throws {
        let modified = ((try? FileManager.default.attributesOfItem(atPath: file.url.path))?[.modificationDate] as? Date)?
            .timeIntervalSince1970 ?? 0
        let ingester = Ingester(jobs: 1)
        var ingestReport = IngestReport()
        switch item.kind {
        case .frame:
            let found = Ingester.FoundFile(url: file.url, session: item.frame.session, fileName: item.frame.fileName,
                                           size: file.size, modified: modified)
            var read = Ingester.ReadFrame(file: found, header: nil, sha256: file.sha256, error: nil)
            do { read.header = try readMicrographHeader(at: file.url) } catch {
                report.unreadable.append("\(item.remotePath): \(error)")
            }
            try catalog.dbQueue.write { db in
                if read.header != nil {
                    try ingester.record(read, in: db, report: &ingestReport)
                } else if var current = try CatalogStore.frame(session: item.frame.session, file: item.frame.fileName, in: db) {
                    current.path = file.url.path
                    current.byteSize = file.size
                    current.sha256 = file.sha256
                    current.ingestedAt = ISO8601DateFormatter().string(from: Date())
                    try CatalogStore.upsertFrame(current, in: db)
                }
            }
            report.framesRecorded += 1
        case .label:
            let found = Ingester.FoundFile(url: file.url, session: item.frame.session,
                                           fileName: item.remotePath.lastSegment, size: file.size, modified: modified)
            var mask: Raster<UInt8>?
            do { mask = try readLabelMask(at: file.url) } catch {
                report.unreadable.append("\(item.remotePath): \(error)")
            }
            try catalog.dbQueue.write { db in
                if mask != nil {
                    try ingester.recordLabel(found, mask: mask, sha256: file.sha256, error: nil, in: db, report: &ingestReport)
                } else if let frameId = item.frame.id {
                    try CatalogStore.upsertLabel(LabelRecord(frameId: frameId, source: labelSource, path: file.url.path,
                                                             sha256: file.sha256, format: "png"), in: db)
                }
            }
            report.labelsRecorded += 1
        }
        report.unreadable += ingestReport.unplaced.map { "\(item.remotePath): \($0.reason)" }
    }
}

/// Fetching the study's published metadata table.
public enum StudyMetadataFetcher {
    /// Downloads the metadata table from the `study-metadata` mirror (or `mirrorName`) into the
    /// store; returns the stored file (verified against the SHA-256 of an earlier download when
    /// `expectedSHA256` is given) and the table's file name on the mirror.
    /// - Throws: `MirrorError` when the mirror is unknown, publishes no table, or the download fails.
    public static func fetch(folder: DataFolder, mirrorName: String = MirrorDefinition.studyMetadata.name,
                             configuration: DownloaderConfiguration = DownloaderConfiguration(),
                             expectedSHA256: String? = nil,
                             environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (file: StoredFile, name: String) {
        let registry = MirrorRegistry(userFolder: folder.url.appendingPathComponent("mirrors"), environment: environment)
        let downloader = Downloader(store: ContentStore(root: folder.url), configuration: configuration)
        let client = MirrorClient(definition: try registry.mirror(named: mirrorName), downloader: downloader,
                                  environment: environment)
        var request = try client.metadataTableRequest()
        request.expected = ExpectedContent(sha256: expectedSHA256)
        let result = downloader.download([request])[0]
        if case .failed(let error) = result.outcome { throw error }
        return (result.file!, try RemotePath(client.definition.metadataPath ?? "table.csv").lastSegment)
    }
}
