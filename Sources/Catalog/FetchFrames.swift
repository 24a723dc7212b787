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
                                   alreadyStored: expected.sha256.flatMap { store.lookup(sha256: $0, size: expected.size) } != nil))
            guard labels, let id = frame.id else { continue }
            let labelPath = try MirrorDefinition.labelPath(folder: frame.session, file: frame.fileName)
            let recorded = try catalog.labels(frameId: id).first { $0.source == labelSource }
            let labelExpected = ExpectedContent(sha256: recorded?.sha256)
            items.append(FetchItem(kind: .label, frame: frame, remotePath: labelPath,
                                   request: client.request(for: labelPath, expected: labelExpected),
                                   alreadyStored: labelExpected.sha256.flatMap { store.lookup(sha256: $0) } != nil))
        }
        return items
    }

    /// Records one fetched (or skipped) file in the catalog, in its own transaction, so a fetch
    /// that is interrupted keeps the records of the files it finished.
    /// - Throws: `DatabaseError` when the catalog cannot be written.
    public static func record(_ item: FetchItem, file: StoredFile, in catalog: CatalogStore,
                              report: inout FetchRecordReport) throws {
        switch item.kind {
        case .frame:
            var frame = item.frame
            frame.path = file.url.path
            frame.byteSize = file.size
            frame.sha256 = file.sha256
            do {
                let header = try readMicrographHeader(at: file.url)
                frame.format = header.format.rawValue
                frame.width = header.width
                frame.height = header.height
                frame.pixelType = header.pixelType.rawValue
            } catch {
                report.unreadable.append("\(item.remotePath): \(error)")
            }
            frame.ingestedAt = ISO8601DateFormatter().string(from: Date())
            try catalog.dbQueue.write { db in
                // Re-read inside the transaction: keep metadata another process may have updated.
                if var current = try CatalogStore.frame(session: frame.session, file: frame.fileName, in: db) {
                    current.path = frame.path
                    current.byteSize = frame.byteSize
                    current.sha256 = frame.sha256
                    current.format = frame.format ?? current.format
                    current.width = frame.width ?? current.width
                    current.height = frame.height ?? current.height
                    current.pixelType = frame.pixelType ?? current.pixelType
                    current.ingestedAt = frame.ingestedAt
                    try CatalogStore.upsertFrame(current, in: db)
                } else {
                    try CatalogStore.upsertFrame(frame, in: db)
                }
            }
            report.framesRecorded += 1
        case .label:
            guard let frameId = item.frame.id else { return }
            var label = LabelRecord(frameId: frameId, source: labelSource, path: file.url.path, sha256: file.sha256, format: "png")
            do {
                let mask = try readLabelMask(at: file.url)
                label.width = mask.width
                label.height = mask.height
                label.particlePixels = mask.pixels.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            } catch {
                report.unreadable.append("\(item.remotePath): \(error)")
            }
            try catalog.upsertLabel(label)
            report.labelsRecorded += 1
        }
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
