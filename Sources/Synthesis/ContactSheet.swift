import Micrograph

/// An 8-bit RGB picture, row-major, 3 bytes a pixel (red, green, blue).
public struct RGBPicture: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var bytes: [UInt8]

    public init(width: Int, height: Int, bytes: [UInt8]? = nil) {
        self.width = width
        self.height = height
        self.bytes = bytes ?? [UInt8](repeating: 0, count: width * height * 3)
        precondition(self.bytes.count == width * height * 3, "RGB picture needs 3 bytes a pixel")
    }

    @inline(__always)
    public subscript(row: Int, column: Int) -> (UInt8, UInt8, UInt8) {
        get { let i = 3 * (row * width + column); return (bytes[i], bytes[i + 1], bytes[i + 2]) }
        set { let i = 3 * (row * width + column); bytes[i] = newValue.0; bytes[i + 1] = newValue.1; bytes[i + 2] = newValue.2 }
    }
}

/// One tile of a contact sheet: a frame shrunk to at most `side` pixels, its gray levels
/// stretched so that the 1st and 99th percentiles map to black and white (x-ray hits and dark
/// particle cores clip instead of flattening everything else), the label's outline drawn over
/// it in colour, and a caption strip underneath.
public struct ContactSheetTile: Sendable {
    public var picture: RGBPicture

    /// The outline colour: a saturated orange that stays visible on any gray.
    public static let outlineColour: (UInt8, UInt8, UInt8) = (255, 110, 0)
    public static let captionHeight = 11

    /// - Parameters:
    ///   - side: the tile's size; the frame is shrunk by a whole factor (box average) to fit.
    ///   - caption: drawn in a 5 x 7 pixel font; characters the font lacks are left blank.
    public init(counts: Raster<Float>, label: Raster<UInt8>, side: Int, caption: String) {
        let factor = max(1, (max(counts.width, counts.height) + side - 1) / side)
        let width = counts.width / factor, height = counts.height / factor
        var shrunk = [Float](repeating: 0, count: width * height)
        var outline = [Bool](repeating: false, count: width * height)
        let scale = 1 / Float(factor * factor)
        for row in 0..<height {
            for column in 0..<width {
                var sum: Float = 0
                for r in (row * factor)..<(row * factor + factor) {
                    for c in (column * factor)..<(column * factor + factor) {
                        sum += counts[r, c]
                        let inside = label[r, c] != 0
                        if inside && !outline[row * width + column] {
                            // A particle pixel with a support pixel (or the frame edge) beside it.
                            let edge = r == 0 || c == 0 || r == label.height - 1 || c == label.width - 1
                                || label[r - 1, c] == 0 || label[r + 1, c] == 0 || label[r, c - 1] == 0 || label[r, c + 1] == 0
                            if edge { outline[row * width + column] = true }
                        }
                    }
                }
                shrunk[row * width + column] = sum * scale
            }
        }
        let sorted = shrunk.sorted()
        let low = sorted[Int(Double(sorted.count - 1) * 0.01)], high = sorted[Int(Double(sorted.count - 1) * 0.99)]
        let range = max(high - low, 1e-6)
        var picture = RGBPicture(width: width, height: height + ContactSheetTile.captionHeight)
        for row in 0..<height {
            for column in 0..<width {
                let index = row * width + column
                if outline[index] {
                    picture[row, column] = ContactSheetTile.outlineColour
                } else {
                    let gray = UInt8(max(0, min(255, ((shrunk[index] - low) / range * 255).rounded())))
                    picture[row, column] = (gray, gray, gray)
                }
            }
        }
        drawText(caption, into: &picture, row: height + 2, column: 2)
        self.picture = picture
    }
}

/// Lays tiles out in a grid, `columns` wide, with a 4-pixel dark gray gutter.
public func contactSheet(_ tiles: [ContactSheetTile], columns: Int) -> RGBPicture {
    let gutter = 4
    guard !tiles.isEmpty else { return RGBPicture(width: 1, height: 1) }
    let columns = max(1, min(columns, tiles.count))
    let rows = (tiles.count + columns - 1) / columns
    let tileWidth = tiles.map { $0.picture.width }.max()!, tileHeight = tiles.map { $0.picture.height }.max()!
    let width = columns * tileWidth + (columns + 1) * gutter
    let height = rows * tileHeight + (rows + 1) * gutter
    var sheet = RGBPicture(width: width, height: height, bytes: [UInt8](repeating: 40, count: width * height * 3))
    for (index, tile) in tiles.enumerated() {
        let top = gutter + (index / columns) * (tileHeight + gutter)
        let left = gutter + (index % columns) * (tileWidth + gutter)
        for row in 0..<tile.picture.height {
            for column in 0..<tile.picture.width {
                sheet[top + row, left + column] = tile.picture[row, column]
            }
        }
    }
    return sheet
}

/// Draws `text` in white with a 5 x 7 pixel font (6 pixels a character), clipped to the picture.
func drawText(_ text: String, into picture: inout RGBPicture, row: Int, column: Int) {
    var left = column
    for character in text {
        if let glyph = font5x7[character] {
            for (dy, bits) in glyph.enumerated() {
                for dx in 0..<5 where bits & (0x10 >> dx) != 0 {
                    let r = row + dy, c = left + dx
                    if r >= 0, r < picture.height, c >= 0, c < picture.width { picture[r, c] = (255, 255, 255) }
                }
            }
        }
        left += 6
    }
}

/// Seven rows of five bits (most significant bit leftmost) per character.
private let font5x7: [Character: [UInt8]] = [
    "0": [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], "1": [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
    "2": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], "3": [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
    "4": [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], "5": [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
    "6": [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], "7": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    "8": [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], "9": [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
    ".": [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C], "/": [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
    "-": [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00], " ": [0, 0, 0, 0, 0, 0, 0],
    "A": [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], "C": [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
    "S": [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], "O": [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
    "N": [0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x11], "U": [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
    "T": [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], "i": [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E],
    "a": [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F], "b": [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E],
    "d": [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F], "e": [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
    "g": [0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E], "k": [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
    "l": [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], "m": [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11],
    "n": [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11], "o": [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E],
    "p": [0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10], "s": [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E],
    "u": [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D], "x": [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11],
]
