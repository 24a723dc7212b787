import Foundation

/// The file formats hrtem reads, recognized by their first bytes (never by the extension).
public enum MicrographFormat: String, Sendable, Codable, CaseIterable {
    case dm3, dm4, tiff, png

    /// The format whose signature starts `prefix`, or nil. DM: a big-endian version 3 or 4;
    /// TIFF: `II*\0`, `MM\0*` (classic) or `II+\0`, `MM\0+` (BigTIFF); PNG: its 8-byte signature.
    public static func detect(_ prefix: UnsafeRawBufferPointer) -> MicrographFormat? {
        let bytes = Array(prefix.prefix(8))
        if bytes.count >= 8, bytes == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        if bytes.count >= 4 {
            if bytes[0] == 0x49, bytes[1] == 0x49, bytes[2] == 42 || bytes[2] == 43, bytes[3] == 0 { return .tiff }
            if bytes[0] == 0x4D, bytes[1] == 0x4D, bytes[2] == 0, bytes[3] == 42 || bytes[3] == 43 { return .tiff }
            if bytes[0] == 0, bytes[1] == 0, bytes[2] == 0, bytes[3] == 3 { return .dm3 }
            if bytes[0] == 0, bytes[1] == 0, bytes[2] == 0, bytes[3] == 4 { return .dm4 }
        }
        return nil
    }

    /// The format of the file at `url` (reads its first 8 bytes).
    /// - Throws: `FormatError` when the file cannot be read or is none of the known formats.
    public static func detect(fileAt url: URL) throws -> MicrographFormat {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw FormatError(file: url.path, "cannot open for reading")
        }
        defer { try? handle.close() }
        let prefix = (try? handle.read(upToCount: 8)) ?? Data()
        guard let format = prefix.withUnsafeBytes({ detect($0) }) else {
            throw FormatError(file: url.path, offset: 0, "not a DM3, DM4, TIFF or PNG file (unknown signature \(hexString(Array(prefix))))")
        }
        return format
    }
}

/// Byte order of the pixel data as stored in the file.
public enum ByteOrder: String, Sendable, Codable {
    case littleEndian, bigEndian
}

/// What the microscope recorded about an acquisition, when the file says (DM tags; TIFF
/// resolution tags give only the pixel size). Every field is optional.
public struct MicroscopeFacts: Sendable, Equatable, Codable {
    /// `Microscope Info.Indicated Magnification` (times, e.g. 330000).
    public var indicatedMagnification: Double?
    /// Accelerating voltage in volts (`Microscope Info.Voltage`).
    public var voltage: Double?
    /// Exposure in seconds (`DataBar.Exposure Time (s)` or `Acquisition.Parameters.High Level.Exposure (s)`).
    public var exposureSeconds: Double?
    /// As written by the acquisition software (`DataBar.Acquisition Date` / `Acquisition Time`).
    public var acquisitionDate: String?
    public var acquisitionTime: String?
    /// Pixel size of the fastest axis (x) in nanometres, when its unit is a length.
    public var pixelSizeNM: Double?
    /// The x axis unit as written ("nm", "A", "1/nm", ...).
    public var pixelUnit: String?

    public init() {}
}

/// Another image in the same file that is not the frame (a DM thumbnail, a later TIFF page).
public struct OtherImage: Sendable, Equatable, Codable {
    public var index: Int
    public var shape: [Int]
    public var pixelType: String
    public var note: String
}

/// Everything known about a micrograph file without reading its pixels.
///
/// Axis order is slowest-first, as NumPy's C order: `[z, y, x]` for a stack, `[height, width]`
/// for a frame, `[n]` for a spectrum; `calibrations` follows the same order.
public struct MicrographHeader: Sendable {
    /// The file as given.
    public var file: String
    public var format: MicrographFormat
    public var shape: [Int]
    public var pixelType: PixelType
    public var calibrations: [AxisCalibration]
    public var byteOrder: ByteOrder
    /// Where the frame's pixels start, when they are stored uncompressed in one contiguous run
    /// (DM always); nil for compressed or scattered storage (PNG, most TIFF).
    public var dataOffset: Int?
    /// The whole DM tag tree (empty for TIFF and PNG).
    public var tags: DMTagGroup
    public var microscope: MicroscopeFacts
    /// Images in the file other than the frame (DM thumbnails, further TIFF pages).
    public var otherImages: [OtherImage]
    /// For DM: the 1-based index of the frame in `ImageList` (as tag paths count).
    public var imageIndex: Int

    public var width: Int { shape.last ?? 0 }
    public var height: Int { shape.count >= 2 ? shape[shape.count - 2] : 1 }
    public var elementCount: Int { shape.reduce(1, *) }
    /// Nanometres per pixel along x, when the x unit is a length.
    public var nanometresPerPixel: Double? { calibrations.last?.nanometresPerPixel }
}

/// A frame read whole: its header and its pixels exactly as stored, for bit-exact checks.
public struct MicrographImage: Sendable {
    public var header: MicrographHeader
    /// The pixels as stored, converted to little-endian, C order, `shape == header.shape`.
    public var data: NPYArray

    /// The pixels as `Float` (converted from the stored type; float64 and 32-bit integers
    /// round to the nearest Float). 1-D data is one row; for 3-D data this is plane z = 0.
    /// Computed on each access: keep the result.
    public var raster: Raster<Float> {
        let width = header.width, height = header.shape.count >= 2 ? header.height : 1
        let count = width * height
        let pixels = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            data.bytes.withUnsafeBytes { raw in
                convertToFloat(raw.baseAddress!, count: count, from: data.pixelType, swapBytes: false, into: buffer.baseAddress!)
            }
            initialized = count
        }
        return Raster(width: width, height: height, pixels: pixels)
    }
}

/// A frame as the pipeline uses it: Float pixels plus the header they came from.
public struct Frame: Sendable {
    public var header: MicrographHeader
    public var raster: Raster<Float>
}

/// Reads only the header of a DM3, DM4, TIFF or PNG file (format found from its first bytes).
/// Fast: the file is memory-mapped and the pixel data is never touched.
/// - Throws: `FormatError` naming the file and the byte offset of what is wrong.
public func readMicrographHeader(at url: URL) throws -> MicrographHeader {
    let file = try MappedFile(url: url)
    return try readMicrographHeader(file)
}

/// As `readMicrographHeader(at:)`, for bytes in memory; `name` is the file named in errors.
public func readMicrographHeader(bytes: Data, name: String) throws -> MicrographHeader {
    try readMicrographHeader(MappedFile(bytes: bytes, name: name))
}

/// As `readMicrograph(at:)`, for bytes in memory; `name` is the file named in errors.
public func readMicrograph(bytes: Data, name: String) throws -> MicrographImage {
    try readMicrograph(MappedFile(bytes: bytes, name: name))
}

/// As `readFrame(at:)`, for bytes in memory; `name` is the file named in errors.
public func readFrame(bytes: Data, name: String) throws -> Frame {
    try readFrame(MappedFile(bytes: bytes, name: name))
}

func readMicrographHeader(_ file: MappedFile) throws -> MicrographHeader {
    guard let format = MicrographFormat.detect(file.bytes) else {
        throw FormatError(file: file.name, offset: 0, "not a DM3, DM4, TIFF or PNG file (unknown signature)")
    }
    switch format {
    case .dm3, .dm4:
        var parser = DMParser(bytes: file.bytes, file: file.name)
        return try parser.parseHeader()
    case .tiff: return try TIFFFile(bytes: file.bytes, file: file.name).header()
    case .png: return try readPNGHeader(file.bytes, file: file.name)
    }
}

/// Reads a whole file: header and every pixel as stored (1-D, 2-D or 3-D).
/// - Throws: `FormatError` naming the file and the byte offset of what is wrong.
public func readMicrograph(at url: URL) throws -> MicrographImage {
    try readMicrograph(MappedFile(url: url))
}

func readMicrograph(_ file: MappedFile) throws -> MicrographImage {
    let header = try readMicrographHeader(file)
    switch header.format {
    case .dm3, .dm4:
        let byteCount = header.elementCount * header.pixelType.byteCount
        var bytes = try [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
            if byteCount > 0 {
                adviseHugePages(buffer.baseAddress!, byteCount: byteCount)
                try file.read(offset: header.dataOffset!, count: byteCount, into: buffer.baseAddress!)
            }
            initialized = byteCount
        }
        if header.byteOrder == .bigEndian { swapBytesInPlace(&bytes, elementSize: header.pixelType.byteCount) }
        return MicrographImage(header: header, data: NPYArray(shape: header.shape, pixelType: header.pixelType, bytes: bytes))
    case .tiff:
        let bytes = try TIFFFile(bytes: file.bytes, file: file.name).readFirstPage(header: header)
        return MicrographImage(header: header, data: NPYArray(shape: header.shape, pixelType: header.pixelType, bytes: bytes))
    case .png:
        let image = try decodePNG(file.bytes, file: file.name)
        return MicrographImage(header: header, data: image.npy)
    }
}

/// Reads the frame as Float pixels in one pass (no intermediate copy of the stored pixels:
/// little-endian float32 is read straight into the result; other types are converted from
/// the memory-mapped file). 1-D data is one row; 3-D data gives plane z = 0.
/// - Throws: `FormatError` naming the file and the byte offset of what is wrong.
public func readFrame(at url: URL) throws -> Frame {
    try readFrame(MappedFile(url: url))
}

func readFrame(_ file: MappedFile) throws -> Frame {
    let header = try readMicrographHeader(file)
    let width = header.width, height = header.shape.count >= 2 ? header.height : 1
    let count = width * height
    switch header.format {
    case .dm3, .dm4:
        let offset = header.dataOffset!
        let pixels = try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            adviseHugePages(buffer.baseAddress!, byteCount: count * 4)
            if header.pixelType == .float32 && header.byteOrder == .littleEndian {
                try file.read(offset: offset, count: count * 4, into: UnsafeMutableRawPointer(buffer.baseAddress!))
            } else {
                convertToFloat(file.bytes.baseAddress! + offset, count: count, from: header.pixelType,
                               swapBytes: header.byteOrder == .bigEndian, into: buffer.baseAddress!)
            }
            initialized = count
        }
        return Frame(header: header, raster: Raster(width: width, height: height, pixels: pixels))
    case .tiff, .png:
        let micrograph = try readMicrograph(file)
        return Frame(header: header, raster: micrograph.raster)
    }
}

/// Converts `count` stored pixels at `source` (any alignment) to Float.
func convertToFloat(_ source: UnsafeRawPointer, count: Int, from pixelType: PixelType, swapBytes: Bool,
                    into destination: UnsafeMutablePointer<Float>) {
    @inline(__always) func run<T: FixedWidthInteger>(_ type: T.Type, _ convert: (T) -> Float) {
        let size = MemoryLayout<T>.size
        if swapBytes {
            for i in 0..<count { destination[i] = convert(source.loadUnaligned(fromByteOffset: i * size, as: T.self).byteSwapped) }
        } else {
            for i in 0..<count { destination[i] = convert(source.loadUnaligned(fromByteOffset: i * size, as: T.self)) }
        }
    }
    switch pixelType {
    case .float32:
        if swapBytes { run(UInt32.self) { Float(bitPattern: $0) } }
        else { UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4) }
    case .float64: run(UInt64.self) { Float(Double(bitPattern: $0)) }
    case .int8: run(Int8.self) { Float($0) }
    case .uint8, .bool: run(UInt8.self) { Float($0) }
    case .int16: run(Int16.self) { Float($0) }
    case .uint16: run(UInt16.self) { Float($0) }
    case .int32: run(Int32.self) { Float($0) }
    case .uint32: run(UInt32.self) { Float($0) }
    case .int64: run(Int64.self) { Float($0) }
    case .uint64: run(UInt64.self) { Float($0) }
    }
}

/// Asks the kernel to back a large fresh buffer with transparent huge pages: filling a
/// 64 MiB frame then takes a few dozen page faults instead of 16,384, which is most of the
/// cost of a read from the page cache. Harmless where unsupported.
func adviseHugePages(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
    #if os(Linux)
    let huge = 2 << 20
    guard byteCount >= 2 * huge else { return }
    let start = (Int(bitPattern: pointer) + huge - 1) & ~(huge - 1)
    let end = (Int(bitPattern: pointer) + byteCount) & ~(huge - 1)
    if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, 14 /* MADV_HUGEPAGE */) }
    #endif
}

func swapBytesInPlace(_ bytes: inout [UInt8], elementSize: Int) {
    guard elementSize > 1 else { return }
    bytes.withUnsafeMutableBufferPointer { buffer in
        var i = 0
        while i + elementSize <= buffer.count {
            var a = i, b = i + elementSize - 1
            while a < b { buffer.swapAt(a, b); a += 1; b -= 1 }
            i += elementSize
        }
    }
}

/// Pixel element types hrtem can write to DM and TIFF files (the generic writers take a
/// `Raster` of any of them and store it bit-exactly).
public protocol StoredPixel: Sendable {
    static var pixelType: PixelType { get }
}
extension Int8: StoredPixel { public static var pixelType: PixelType { .int8 } }
extension UInt8: StoredPixel { public static var pixelType: PixelType { .uint8 } }
extension Int16: StoredPixel { public static var pixelType: PixelType { .int16 } }
extension UInt16: StoredPixel { public static var pixelType: PixelType { .uint16 } }
extension Int32: StoredPixel { public static var pixelType: PixelType { .int32 } }
extension UInt32: StoredPixel { public static var pixelType: PixelType { .uint32 } }
extension Int64: StoredPixel { public static var pixelType: PixelType { .int64 } }
extension UInt64: StoredPixel { public static var pixelType: PixelType { .uint64 } }
extension Float: StoredPixel { public static var pixelType: PixelType { .float32 } }
extension Double: StoredPixel { public static var pixelType: PixelType { .float64 } }

extension Raster where Element: StoredPixel {
    /// The pixels as little-endian bytes, row-major (the host is little-endian on every
    /// platform hrtem supports).
    public var littleEndianBytes: [UInt8] { pixels.withUnsafeBytes { Array($0) } }
}
