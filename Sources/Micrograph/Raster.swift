/// A 2-D grid of pixels stored row-major: `pixels[row * width + column]`, row 0 at the top.
///
/// The one image type every module exchanges. Calibration and provenance travel beside it
/// (see `Frame`), never inside the numeric loops.
public struct Raster<Element>: Sendable where Element: Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [Element]

    /// - Precondition: `pixels.count == width * height`.
    public init(width: Int, height: Int, pixels: [Element]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height,
                     "Raster \(width)x\(height) needs \(width * height) pixels, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public init(width: Int, height: Int, repeating value: Element) {
        self.init(width: width, height: height, pixels: [Element](repeating: value, count: width * height))
    }

    public var count: Int { pixels.count }

    public subscript(row: Int, column: Int) -> Element {
        get { pixels[row * width + column] }
        set { pixels[row * width + column] = newValue }
    }

    /// The same grid with every pixel transformed.
    public func map<T>(_ transform: (Element) throws -> T) rethrows -> Raster<T> {
        Raster<T>(width: width, height: height, pixels: try pixels.map(transform))
    }

    /// The rectangle of `height` rows and `width` columns whose top-left corner is (row, column).
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
