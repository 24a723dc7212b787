import Catalog
import Foundation
import Micrograph
import Preprocessing

/// The pictures the browser shows of a frame, computed once and kept in the data folder under
/// `cache/`, content-addressed by the frame's (or label's) SHA-256: a thumbnail, and a pyramid of
/// 256-pixel tiles (level 0 at full resolution, each next level halved) for the zoomable view,
/// with the same pyramid of the label as a transparent overlay.
///
/// Gray levels are stretched so that the 1st and 99th percentiles of the frame map to black and
/// white, so x-ray hits and dark particle cores clip instead of flattening everything else.
public struct FrameImages: Sendable {
    public static let tileSide = 256
    public static let thumbnailSide = 192

    public let cacheFolder: URL

    public init(dataFolder: DataFolder) {
        cacheFolder = dataFolder.url.appendingPathComponent("cache")
    }

    // MARK: Where cached pictures live (names built from validated hex digests and integers only)

    public func thumbnailFile(sha256: String) -> URL {
        cacheFolder.appendingPathComponent("thumbnails").appendingPathComponent(String(sha256.prefix(2)))
            .appendingPathComponent(sha256 + ".png")
    }

    func pyramidFolder(sha256: String) -> URL {
        cacheFolder.appendingPathComponent("tiles").appendingPathComponent(sha256)
    }

    /// Written last, so its presence means every tile of the pyramid is there.
    public func pyramidManifest(sha256: String) -> URL {
        pyramidFolder(sha256: sha256).appendingPathComponent("pyramid.json")
    }

    public func tileFile(sha256: String, level: Int, row: Int, column: Int) -> URL {
        pyramidFolder(sha256: sha256).appendingPathComponent("\(level)").appendingPathComponent("\(row)_\(column).png")
    }

    /// Where a label's overlay pyramid lives.
    public func overlayRoot(labelSha256: String) -> URL {
        cacheFolder.appendingPathComponent("overlays").appendingPathComponent(labelSha256)
    }

    /// Where a model's prediction on a frame lives: by the model's key and the frame's hash.
    public func predictionRoot(modelKey: String, frameSha256: String) -> URL {
        cacheFolder.appendingPathComponent("predictions").appendingPathComponent(modelKey).appendingPathComponent(frameSha256)
    }

    public func overlayTileFile(root: URL, level: Int, row: Int, column: Int) -> URL {
        root.appendingPathComponent("\(level)").appendingPathComponent("\(row)_\(column).png")
    }

    /// Written last, so its presence means every tile of the overlay is there.
    public func overlayManifest(root: URL) -> URL { root.appendingPathComponent("pyramid.json") }

    // MARK: Computing them

    /// The frame's pixels, from the file the catalog recorded for it, checked against the
    /// catalog's hash (a file changed since ingest would otherwise be cached under the wrong key).
    static func readVerifiedFrame(_ frame: FrameRecord) throws -> Raster<Float> {
        guard let path = frame.path, let sha256 = frame.sha256 else {
            throw FormatError(file: frame.fileName, "the frame is not ingested (no file in the catalog)")
        }
        let url = URL(fileURLWithPath: path)
        let digest = try sha256Hex(fileAt: url)
        guard digest == sha256 else {
            throw FormatError(file: path, "the file changed since it was ingested (sha256 \(digest.prefix(12)), catalog \(sha256.prefix(12))); ingest it again")
        }
        return try readFrame(at: url).raster
    }

    /// 8-bit gray of a frame, the 1st..99th percentile range stretched to 0...255 (percentiles of
    /// an even sample of at most 65,536 pixels: a display stretch needs no exact selection).
    static func displayGray(_ raster: Raster<Float>) -> Raster<UInt8> {
        let stride = max(1, raster.count / 65_536)
        var sample = [Double]()
        sample.reserveCapacity(raster.count / stride + 1)
        for index in Swift.stride(from: 0, to: raster.count, by: stride) where raster.pixels[index].isFinite {
            sample.append(Double(raster.pixels[index]))
        }
        guard !sample.isEmpty else { return Raster(width: raster.width, height: raster.height, repeating: 0) }
        let bounds = sample.withUnsafeBufferPointer { percentiles($0, [1, 99]) }
        let low = Float(bounds[0]), span = max(Float(bounds[1] - bounds[0]), .leastNormalMagnitude)
        return raster.map { value in
            guard value.isFinite else { return 0 }
            return UInt8(min(max((value - low) / span * 255, 0), 255).rounded())
        }
    }

    /// Halves a raster by averaging 2 x 2 blocks (an odd last row or column averages what it has).
    static func halved(_ image: Raster<UInt8>) -> Raster<UInt8> {
        let width = (image.width + 1) / 2, height = (image.height + 1) / 2
        var pixels = [UInt8](repeating: 0, count: width * height)
        image.pixels.withUnsafeBufferPointer { source in
            for row in 0..<height {
                let r0 = 2 * row, r1 = min(2 * row + 1, image.height - 1)
                for column in 0..<width {
                    let c0 = 2 * column, c1 = min(2 * column + 1, image.width - 1)
                    let sum = Int(source[r0 * image.width + c0]) + Int(source[r0 * image.width + c1])
                        + Int(source[r1 * image.width + c0]) + Int(source[r1 * image.width + c1])
                    pixels[row * width + column] = UInt8((sum + 2) / 4)
                }
            }
        }
        return Raster(width: width, height: height, pixels: pixels)
    }

    /// The shape of a pyramid over a `width` x `height` frame.
    public struct Pyramid: Codable, Sendable, Equatable {
        public struct Level: Codable, Sendable, Equatable {
            public var level: Int
            public var width: Int
            public var height: Int
            public var rows: Int
            public var columns: Int
        }
        public var tile: Int
        public var levels: [Level]

        public init(width: Int, height: Int, tile: Int = FrameImages.tileSide) {
            self.tile = tile
            var levels: [Level] = []
            var w = width, h = height, level = 0
            while true {
                levels.append(Level(level: level, width: w, height: h, rows: (h + tile - 1) / tile, columns: (w + tile - 1) / tile))
                if max(w, h) <= tile { break }
                w = (w + 1) / 2; h = (h + 1) / 2; level += 1
            }
            self.levels = levels
        }

        public var tileCount: Int { levels.reduce(0) { $0 + $1.rows * $1.columns } }
    }

    /// Writes the thumbnail of a frame (no-op when it exists).
    public func makeThumbnail(of frame: FrameRecord) throws {
        guard let sha256 = frame.sha256 else { return }
        let file = thumbnailFile(sha256: sha256)
        if FileManager.default.fileExists(atPath: file.path) { return }
        var gray = Self.displayGray(try Self.readVerifiedFrame(frame))
        while max(gray.width, gray.height) > Self.thumbnailSide { gray = Self.halved(gray) }
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writePNG(gray8: gray, to: file)
    }

    /// Writes every tile of the frame's pyramid, then its manifest; `progress` gets the fraction
    /// done after each level.
    public func makePyramid(of frame: FrameRecord, progress: (Double) -> Void = { _ in }) throws {
        guard let sha256 = frame.sha256 else { return }
        if FileManager.default.fileExists(atPath: pyramidManifest(sha256: sha256).path) { return }
        var gray = Self.displayGray(try Self.readVerifiedFrame(frame))
        let pyramid = Pyramid(width: gray.width, height: gray.height)
        var written = 0
        for level in pyramid.levels {
            if level.level > 0 { gray = Self.halved(gray) }
            try writeTiles(of: level, count: pyramid.tile) { row, column in
                let tile = Self.tileRect(level, pyramid.tile, row, column)
                try writePNG(gray8: gray.crop(row: tile.row, column: tile.column, width: tile.width, height: tile.height),
                             to: tileFile(sha256: sha256, level: level.level, row: row, column: column))
            }
            written += level.rows * level.columns
            progress(Double(written) / Double(pyramid.tileCount))
        }
        try writeFileAtomically(try JSONEncoder().encode(pyramid), to: pyramidManifest(sha256: sha256))
    }

    /// Writes the label's overlay pyramid (orange).
    public func makeOverlay(of label: LabelRecord) throws {
        guard let sha256 = label.sha256, let path = label.path else { return }
        let root = overlayRoot(labelSha256: sha256)
        if FileManager.default.fileExists(atPath: overlayManifest(root: root).path) { return }
        try writeOverlay(try readLabelMask(at: URL(fileURLWithPath: path)), colour: (255, 110, 0), root: root)
    }

    /// Writes a mask's overlay pyramid under `root`: its particle pixels (non-zero) in `colour`
    /// and half transparent, the rest clear (a level's alpha is the share of particle pixels
    /// under each of its pixels).
    public func writeOverlay(_ particles: Raster<UInt8>, colour: (UInt8, UInt8, UInt8), root: URL) throws {
        var mask = particles.map { $0 != 0 ? UInt8(255) : 0 }
        let pyramid = Pyramid(width: mask.width, height: mask.height)
        for level in pyramid.levels {
            if level.level > 0 { mask = Self.halved(mask) }
            try writeTiles(of: level, count: pyramid.tile) { row, column in
                let tile = Self.tileRect(level, pyramid.tile, row, column)
                var rgba = [UInt8](repeating: 0, count: tile.width * tile.height * 4)
                for r in 0..<tile.height {
                    for c in 0..<tile.width {
                        let offset = 4 * (r * tile.width + c)
                        rgba[offset] = colour.0; rgba[offset + 1] = colour.1; rgba[offset + 2] = colour.2
                        rgba[offset + 3] = UInt8(Int(mask[tile.row + r, tile.column + c]) * 150 / 255)
                    }
                }
                try writePNG(rgba: rgba, width: tile.width, height: tile.height,
                             to: overlayTileFile(root: root, level: level.level, row: row, column: column))
            }
        }
        try writeFileAtomically(try JSONEncoder().encode(pyramid), to: overlayManifest(root: root))
    }

    private static func tileRect(_ level: Pyramid.Level, _ side: Int, _ row: Int, _ column: Int)
        -> (row: Int, column: Int, width: Int, height: Int) {
        let top = row * side, left = column * side
        return (top, left, min(side, level.width - left), min(side, level.height - top))
    }

    private func writeTiles(of level: Pyramid.Level, count side: Int, _ write: (Int, Int) throws -> Void) throws {
        for row in 0..<level.rows {
            for column in 0..<level.columns { try write(row, column) }
        }
    }
}
