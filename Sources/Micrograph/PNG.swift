import CPNG
import Foundation

/// A PNG decoded through libpng: palette expanded to RGB, gray below 8 bits expanded to 8 bits,
/// transparency to alpha; 16-bit samples kept (little-endian in `samples`).
struct DecodedPNG {
    var width: Int
    var height: Int
    /// 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
    var channels: Int
    /// 8 or 16.
    var bitDepth: Int
    var samples: [UInt8]

    var npy: NPYArray {
        NPYArray(shape: channels == 1 ? [height, width] : [height, width, channels],
                 pixelType: bitDepth == 16 ? .uint16 : .uint8, bytes: samples)
    }

    func sample(_ index: Int) -> UInt16 {
        bitDepth == 16 ? UInt16(samples[2 * index]) | UInt16(samples[2 * index + 1]) << 8 : UInt16(samples[index])
    }
}

/// PNGs wider or taller than this are refused before decoding.
let pngMaximumSide: UInt32 = 1 << 16

private func message(of reader: inout hrtem_png_reader) -> String {
    withUnsafeBytes(of: &reader.message) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
}

private func beginPNG(_ bytes: UnsafeRawBufferPointer, file: String, _ reader: UnsafeMutablePointer<hrtem_png_reader>) throws {
    guard let base = bytes.baseAddress else { throw FormatError(file: file, offset: 0, "empty file") }
    if hrtem_png_read_begin(reader, base.assumingMemoryBound(to: UInt8.self), bytes.count, pngMaximumSide) == 0 {
        throw FormatError(file: file, offset: reader.pointee.position, "PNG: \(message(of: &reader.pointee))")
    }
}

func readPNGHeader(_ bytes: UnsafeRawBufferPointer, file: String) throws -> MicrographHeader {
    let reader = UnsafeMutablePointer<hrtem_png_reader>.allocate(capacity: 1)
    reader.initialize(to: hrtem_png_reader())
    defer { hrtem_png_read_end(reader); reader.deallocate() }
    try beginPNG(bytes, file: file, reader)
    let r = reader.pointee
    let width = Int(r.width), height = Int(r.height), channels = Int(r.channels)
    return MicrographHeader(file: file, format: .png, shape: channels == 1 ? [height, width] : [height, width, channels],
                            pixelType: r.bit_depth == 16 ? .uint16 : .uint8,
                            calibrations: [AxisCalibration](repeating: AxisCalibration(), count: channels == 1 ? 2 : 3),
                            byteOrder: .littleEndian, dataOffset: nil, tags: DMTagGroup(), microscope: MicroscopeFacts(),
                            otherImages: [], imageIndex: 1)
}

func decodePNG(_ bytes: UnsafeRawBufferPointer, file: String) throws -> DecodedPNG {
    let reader = UnsafeMutablePointer<hrtem_png_reader>.allocate(capacity: 1)
    reader.initialize(to: hrtem_png_reader())
    defer { hrtem_png_read_end(reader); reader.deallocate() }
    try beginPNG(bytes, file: file, reader)
    let height = Int(reader.pointee.height), rowBytes = reader.pointee.row_bytes
    // Deflate cannot expand data more than 1032:1, so a header asking for more than that is
    // corrupt; refusing it bounds the allocation by the file size.
    let (total, overflow) = height.multipliedReportingOverflow(by: rowBytes)
    guard !overflow, total <= bytes.count * 1032 + (1 << 20) else {
        throw FormatError(file: file, offset: 16, "PNG: \(reader.pointee.width) x \(height) pixels cannot be stored in a \(bytes.count)-byte file")
    }
    var samples = [UInt8](repeating: 0, count: total)
    let ok = samples.withUnsafeMutableBytes { buffer -> Int32 in
        hrtem_png_read_rows(reader, buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt32(height))
    }
    guard ok != 0 else {
        throw FormatError(file: file, offset: reader.pointee.position, "PNG: \(message(of: &reader.pointee))")
    }
    return DecodedPNG(width: Int(reader.pointee.width), height: height, channels: Int(reader.pointee.channels),
                      bitDepth: Int(reader.pointee.bit_depth), samples: samples)
}

/// Reads a binary label mask: 1 where the pixel is particle (any non-zero value), 0 elsewhere.
///
/// PNG: 1/2/4/8/16-bit gray, palette (a pixel is particle when its colour is not black),
/// RGB(A) and gray+alpha (fully transparent pixels are background). TIFF and NPY: any integer
/// or float grayscale (non-zero is particle). DM, MRC, SER and EMD files are accepted too.
/// - Throws: `FormatError` naming the file and the offset of what is wrong.
public func readLabelMask(at url: URL) throws -> Raster<UInt8> {
    try readLabelMask(MappedFile(url: url))
}

/// As `readLabelMask(at:)`, for bytes in memory; `name` is the file named in errors.
public func readLabelMask(bytes: Data, name: String) throws -> Raster<UInt8> {
    try readLabelMask(MappedFile(bytes: bytes, name: name))
}

/// Reads a label mask whose pixels are class numbers (a multi-class mask: PNG gray, TIFF, NPY,
/// MRC...) and keeps the stated classes: 1 where the pixel's value is one of
/// `particleClasses`, 0 elsewhere. With nil, as `readLabelMask(at:)`: any non-zero pixel.
/// - Throws: `FormatError` naming the file; for a colour PNG with classes given (class numbers
///   need one channel).
public func readLabelMask(at url: URL, particleClasses: Set<Int>?) throws -> Raster<UInt8> {
    let file = try MappedFile(url: url)
    guard let classes = particleClasses else { return try readLabelMask(file) }
    let values = try readClassNumbers(file)
    return values.map { $0.rounded() == $0 && classes.contains(Int(exactly: $0) ?? Int.min) ? 1 : 0 }
}

/// The pixel values of a one-channel mask as Float (PNG gray, NPY, or any frame format).
func readClassNumbers(_ file: MappedFile) throws -> Raster<Float> {
    if isNPY(file.bytes) {
        let array = try parseNPY(Array(file.bytes), file: file.name)
        guard array.shape.count == 2 else {
            throw FormatError(file: file.name, offset: 0, "a label mask must be a 2-D array, found shape \(array.shape)")
        }
        let count = array.elementCount
        let pixels = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            array.bytes.withUnsafeBytes { convertToFloat($0.baseAddress!, count: count, from: array.pixelType, swapBytes: false, into: buffer.baseAddress!) }
            initialized = count
        }
        return Raster(width: array.shape[1], height: array.shape[0], pixels: pixels)
    }
    if MicrographFormat.detect(file.bytes) == .png {
        let image = try decodePNG(file.bytes, file: file.name)
        guard image.channels <= 2 else {
            throw FormatError(file: file.name, offset: 0, "class numbers need a gray mask; this PNG has \(image.channels) channels (use any non-zero, or a colour map)")
        }
        return Raster(width: image.width, height: image.height, pixels: (0..<(image.width * image.height)).map { Float(image.sample($0 * image.channels)) })
    }
    let micrograph = try readMicrograph(file)
    guard micrograph.header.shape.count == 2 else {
        throw FormatError(file: file.name, offset: 0, "a label mask must be a 2-D image, found shape \(micrograph.header.shape)")
    }
    return micrograph.raster
}

func isNPY(_ bytes: UnsafeRawBufferPointer) -> Bool {
    bytes.count >= 6 && bytes[0] == 0x93 && bytes[1] == 0x4E && bytes[2] == 0x55 && bytes[3] == 0x4D && bytes[4] == 0x50 && bytes[5] == 0x59
}

func readLabelMask(_ file: MappedFile) throws -> Raster<UInt8> {
    if isNPY(file.bytes) { return try readClassNumbers(file).map { $0 != 0 ? 1 : 0 } }
    switch MicrographFormat.detect(file.bytes) {
    case .png?:
        let image = try decodePNG(file.bytes, file: file.name)
        let colorChannels = image.channels >= 3 ? 3 : 1
        let hasAlpha = image.channels == 2 || image.channels == 4
        var out = [UInt8](repeating: 0, count: image.width * image.height)
        if image.channels == 1 && image.bitDepth == 8 {
            image.samples.withUnsafeBufferPointer { s in
                for i in 0..<out.count { out[i] = s[i] != 0 ? 1 : 0 }
            }
        } else {
            for i in 0..<out.count {
                let base = i * image.channels
                if hasAlpha && image.sample(base + image.channels - 1) == 0 { continue }
                for c in 0..<colorChannels where image.sample(base + c) != 0 { out[i] = 1; break }
            }
        }
        return Raster(width: image.width, height: image.height, pixels: out)
    default:
        let micrograph = try readMicrograph(file)
        guard micrograph.header.shape.count == 2 else {
            throw FormatError(file: file.name, offset: 0, "a label mask must be a 2-D image, found shape \(micrograph.header.shape)")
        }
        let raster = micrograph.raster
        return raster.map { $0 != 0 ? 1 : 0 }
    }
}

/// An RGB colour of a composite (multi-class) mask.
public struct RGBColor: Hashable, Sendable, Codable {
    public var red: UInt8, green: UInt8, blue: UInt8
    public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) { self.red = red; self.green = green; self.blue = blue }
}

/// Reads a composite mask (Labelbox `color_rgb` masks): each pixel's colour is looked up in
/// `colorMap` (colour -> class index); black, transparent and unlisted colours are class 0.
/// - Throws: `FormatError` naming the file when it cannot be read.
public func readClassMask(at url: URL, colorMap: [RGBColor: UInt8]) throws -> Raster<UInt8> {
    let file = try MappedFile(url: url)
    guard MicrographFormat.detect(file.bytes) == .png else {
        throw FormatError(file: url.path, offset: 0, "a composite class mask must be a PNG")
    }
    let image = try decodePNG(file.bytes, file: url.path)
    var out = [UInt8](repeating: 0, count: image.width * image.height)
    let shift = image.bitDepth == 16 ? 8 : 0
    for i in 0..<out.count {
        let base = i * image.channels
        if (image.channels == 2 || image.channels == 4) && image.sample(base + image.channels - 1) == 0 { continue }
        let color: RGBColor
        if image.channels >= 3 {
            color = RGBColor(UInt8(image.sample(base) >> shift), UInt8(image.sample(base + 1) >> shift), UInt8(image.sample(base + 2) >> shift))
        } else {
            let g = UInt8(image.sample(base) >> shift)
            color = RGBColor(g, g, g)
        }
        out[i] = colorMap[color] ?? 0
    }
    return Raster(width: image.width, height: image.height, pixels: out)
}

private func encodePNG(_ pixels: UnsafeRawBufferPointer, width: Int, height: Int, channels: Int, bitDepth: Int, to url: URL) throws {
    precondition(pixels.count == width * height * channels * bitDepth / 8, "PNG writer: pixel count disagrees with the size")
    guard width > 0, height > 0 else { throw FormatError(file: url.path, "PNG: cannot write an empty \(width) x \(height) image") }
    var writer = hrtem_png_writer()
    defer { hrtem_png_writer_free(&writer) }
    let ok = hrtem_png_encode(&writer, pixels.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt32(width), UInt32(height),
                              Int32(channels), Int32(bitDepth), 6)
    guard ok != 0 else {
        let text = withUnsafeBytes(of: &writer.message) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        throw FormatError(file: url.path, "PNG encoding failed: \(text)")
    }
    try writeFileAtomically(Data(bytes: writer.bytes, count: writer.count), to: url)
}

/// Writes an 8-bit grayscale PNG (labels: 0/255), atomically.
/// - Throws: `FormatError` naming the file.
public func writePNG(gray8 raster: Raster<UInt8>, to url: URL) throws {
    try raster.pixels.withUnsafeBytes { try encodePNG($0, width: raster.width, height: raster.height, channels: 1, bitDepth: 8, to: url) }
}

/// Writes a 16-bit grayscale PNG, atomically.
public func writePNG(gray16 raster: Raster<UInt16>, to url: URL) throws {
    try raster.pixels.withUnsafeBytes { try encodePNG($0, width: raster.width, height: raster.height, channels: 1, bitDepth: 16, to: url) }
}

/// Writes an 8-bit RGB PNG from interleaved bytes (`rgb.count == width * height * 3`, row-major), atomically.
public func writePNG(rgb: [UInt8], width: Int, height: Int, to url: URL) throws {
    try rgb.withUnsafeBytes { try encodePNG($0, width: width, height: height, channels: 3, bitDepth: 8, to: url) }
}

/// Writes an 8-bit RGBA PNG from interleaved bytes (`rgba.count == width * height * 4`), atomically.
public func writePNG(rgba: [UInt8], width: Int, height: Int, to url: URL) throws {
    try rgba.withUnsafeBytes { try encodePNG($0, width: width, height: height, channels: 4, bitDepth: 8, to: url) }
}

/// Writes an 8-bit RGB PNG from a raster of colours, atomically.
public func writePNG(rgb raster: Raster<RGBColor>, to url: URL) throws {
    var bytes = [UInt8]()
    bytes.reserveCapacity(raster.count * 3)
    for c in raster.pixels { bytes += [c.red, c.green, c.blue] }
    try writePNG(rgb: bytes, width: raster.width, height: raster.height, to: url)
}
