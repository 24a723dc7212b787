/// A 2-D grid of pixels stored row-major: `pixels[row * width + column]`, row 0 at the top.
///
/// The one image type every module exchanges. Calibration and provenance travel beside it
/// (see `Frame`), never inside the numeric loops.
///
/// Its members are `@inlinable` so that other modules (and packages depending on this one)
/// get them specialized for their element type and inlined into their per-pixel loops; a
/// generic call across the module boundary is otherwise an unspecialized call per pixel
/// (five times slower on a `map` over a 4096 x 4096 frame).
public struct Raster<Element>: Sendable where Element: Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [Element]

    /// - Precondition: `pixels.count == width * height`.
    @inlinable
    public init(width: Int, height: Int, pixels: [Element]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height,
                     "Raster \(width)x\(height) needs \(width * height) pixels, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    @inlinable
    public init(width: Int, height: Int, repeating value: Element) {
        self.init(width: width, height: height, pixels: [Element](repeating: value, count: width * height))
    }

    @inlinable public var count: Int { pixels.count }

    @inlinable
    public subscript(row: Int, column: Int) -> Element {
        get { pixels[row * width + column] }
        set { pixels[row * width + column] = newValue }
    }

    /// The same grid with every pixel transformed.
    @inlinable
    public func map<T>(_ transform: (Element) throws -> T) rethrows -> Raster<T> {
        Raster<T>(width: width, height: height, pixels: try pixels.map(transform))
    }

    /// The rectangle of `height` rows and `width` columns whose top-left corner is (row, column).
    @inlinable
    public func crop(row: Int, column: Int, width cropWidth: Int, height cropHeight: Int) -> Raster<Element> {
        precondition(row >= 0 && column >= 0 && row + cropHeight <= height && column + cropWidth <= width,
                     "crop outside the raster")
        var out = [Element]()
        out.reserveCapacity(cropWidth * cropHeight)
        for r in row..<(row + cropHeight) {
            let start = r * width + column
            out.append(contentsOf: pixels[start..<(start + cropWidth)])
        }
        return Raster(width: cropWidth, height: cropHeight, pixels: out)
    }
}

extension Raster: Equatable where Element: Equatable {}
