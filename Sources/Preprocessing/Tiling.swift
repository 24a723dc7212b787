import Micrograph

/// The top-left corner of a patch in its frame, in pixels (row down, column across).
public struct PatchOrigin: Sendable, Hashable, Codable {
    public var row: Int
    public var column: Int
    public init(row: Int, column: Int) { self.row = row; self.column = column }
}

/// Patch origins of a `width` x `height` frame in raster order (rows of patches top to bottom,
/// left to right within a row): every `stride` pixels while the patch fits entirely
/// (the study's step 5; 512/512 on 4096 x 4096 gives 64).
public func tileOrigins(width: Int, height: Int, patch: Int, stride: Int) -> [PatchOrigin] {
    precondition(patch > 0 && stride > 0, "patch and stride must be positive")
    guard patch <= width, patch <= height else { return [] }
    var origins = [PatchOrigin]()
    for row in Swift.stride(from: 0, through: height - patch, by: stride) {
        for column in Swift.stride(from: 0, through: width - patch, by: stride) {
            origins.append(PatchOrigin(row: row, column: column))
        }
    }
    return origins
}

/// Non-zero (particle) pixels of a label inside the patch at `origin`.
public func particlePixelCount(_ label: Raster<UInt8>, at origin: PatchOrigin, patch: Int) -> Int {
    var count = 0
    label.pixels.withUnsafeBufferPointer { pixels in
        for r in origin.row..<(origin.row + patch) {
            let base = r * label.width + origin.column
            for c in 0..<patch where pixels[base + c] != 0 { count += 1 }
        }
    }
    return count
}

/// A patch that passed the filter, with its particle-pixel count.
public struct KeptPatch: Sendable, Hashable, Codable {
    public var origin: PatchOrigin
    public var particlePixels: Int
}

/// The tiles of a label that have strictly more than `minParticlePixels` particle pixels
/// (the study's preprocessing, step 6), in raster order.
public func keptPatches(label: Raster<UInt8>, patch: Int = 512, stride: Int = 512,
                        minParticlePixels: Int = 400) -> [KeptPatch] {
    tileOrigins(width: label.width, height: label.height, patch: patch, stride: stride).compactMap { origin in
        let count = particlePixelCount(label, at: origin, patch: patch)
        return count > minParticlePixels ? KeptPatch(origin: origin, particlePixels: count) : nil
    }
}

/// The `patch` x `patch` pixels at `origin`, row-major, appended to `destination` (no
/// intermediate raster: the materializer streams patches straight into its output).
/// Inlinable so callers in other modules get it specialized for their pixel type.
@inlinable
public func appendPatch<T>(_ raster: Raster<T>, at origin: PatchOrigin, patch: Int, to destination: inout [T]) {
    precondition(origin.row + patch <= raster.height && origin.column + patch <= raster.width, "patch outside the frame")
    for r in origin.row..<(origin.row + patch) {
        let start = r * raster.width + origin.column
        destination.append(contentsOf: raster.pixels[start..<(start + patch)])
    }
}
