import Catalog
import Experiments
import Foundation
import Micrograph

/// Computes the cached pictures off the request path: thumbnails of every ingested frame in the
/// background from the start, and a frame's tile pyramid (and its label's overlay) when its page
/// first asks. Requests never wait on a pyramid; they ask for its progress and show it.
public final class ImageWorker: Sendable {
    public struct Progress: Codable, Sendable, Equatable {
        public var thumbnailsDone = 0
        public var thumbnailsFailed = 0
        public var thumbnailsTotal = 0
        /// Tile pyramids being built, by frame hash: the fraction done.
        public var pyramids: [String: Double] = [:]
        /// Why a pyramid could not be built, by frame hash.
        public var failures: [String: String] = [:]
        /// Predictions being computed, by prediction root path, and why one failed.
        public var predictions: Set<String> = []
        public var predictionFailures: [String: String] = [:]
    }

    let images: FrameImages
    private let store: CatalogStore
    private let state = Locked(Progress())

    public init(images: FrameImages, store: CatalogStore) {
        self.images = images
        self.store = store
    }

    public var progress: Progress { state.value }

    /// Starts making the thumbnails of every ingested frame that has none yet, one at a time
    /// at background priority (the server keeps the other core for requests).
    public func startThumbnails() {
        Task.detached(priority: .background) { [self] in
            let frames = ((try? store.allFrames()) ?? []).filter { $0.sha256 != nil }
            state.withLock { $0.thumbnailsTotal = frames.count }
            for frame in frames {
                do {
                    try images.makeThumbnail(of: frame)
                    state.withLock { $0.thumbnailsDone += 1 }
                } catch {
                    state.withLock { $0.thumbnailsFailed += 1 }
                }
            }
        }
    }

    /// Makes one thumbnail now (a grid asked for it before the background pass got there).
    public func thumbnail(of frame: FrameRecord) async throws -> URL? {
        guard let sha256 = frame.sha256 else { return nil }
        let file = images.thumbnailFile(sha256: sha256)
        if FileManager.default.fileExists(atPath: file.path) { return file }
        let images = self.images
        try await Task.detached(priority: .userInitiated) { try images.makeThumbnail(of: frame) }.value
        return file
    }

    /// Starts building the frame's pyramid and its label's overlay unless they exist or are
    /// under way; returns at once.
    public func requestPyramid(of frame: FrameRecord, label: LabelRecord?) {
        guard let sha256 = frame.sha256 else { return }
        if FileManager.default.fileExists(atPath: images.pyramidManifest(sha256: sha256).path),
           label?.sha256.map({ FileManager.default.fileExists(atPath: images.overlayManifest(root: images.overlayRoot(labelSha256: $0)).path) }) ?? true {
            return
        }
        let started = state.withLock { progress -> Bool in
            guard progress.pyramids[sha256] == nil, progress.failures[sha256] == nil else { return false }
            progress.pyramids[sha256] = 0
            return true
        }
        guard started else { return }
        Task.detached(priority: .utility) { [self] in
            do {
                try images.makePyramid(of: frame) { fraction in
                    state.withLock { $0.pyramids[sha256] = fraction * 0.9 }
                }
                if let label { try images.makeOverlay(of: label) }
                state.withLock { $0.pyramids[sha256] = nil }
            } catch {
                state.withLock {
                    $0.pyramids[sha256] = nil
                    $0.failures[sha256] = "\(error)"
                }
            }
        }
    }

    /// The key a model's cached predictions live under: the hash of its id and card (a model
    /// re-registered under the same id with other weights gets a new key).
    public static func modelKey(_ model: ModelRecord) -> String {
        sha256Hex(Data((model.id + "\n" + (model.card ?? "")).utf8))
    }

    /// Starts segmenting the frame with the model (its folder as the catalog records it) unless
    /// the prediction exists or is under way; returns where it will be.
    @discardableResult
    public func requestPrediction(of frame: FrameRecord, model: ModelRecord, modelFolder: URL) -> URL? {
        guard let sha256 = frame.sha256 else { return nil }
        let root = images.predictionRoot(modelKey: Self.modelKey(model), frameSha256: sha256)
        if FileManager.default.fileExists(atPath: images.overlayManifest(root: root).path) { return root }
        let started = state.withLock { progress -> Bool in
            guard !progress.predictions.contains(root.path), progress.predictionFailures[root.path] == nil else { return false }
            progress.predictions.insert(root.path)
            return true
        }
        guard started else { return root }
        Task.detached(priority: .utility) { [self] in
            do {
                let segmenter = try FrameSegmenter(modelFolder: modelFolder, threads: 1)
                let raw = try FrameImages.readVerifiedFrame(frame)
                let tile = segmenter.accepts(tile: segmenter.patch) ? segmenter.patch : 512
                try images.writeOverlay(segmenter.segment(raw, tile: tile).mask, colour: (0, 200, 255), root: root)
                state.withLock { _ = $0.predictions.remove(root.path) }
            } catch {
                state.withLock {
                    _ = $0.predictions.remove(root.path)
                    $0.predictionFailures[root.path] = "\(error)"
                }
            }
        }
        return root
    }
}
