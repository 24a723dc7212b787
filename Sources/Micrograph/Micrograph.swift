import Foundation

/// The file formats hrtem reads, recognized by their first bytes (never by the extension).
public enum MicrographFormat: String, Sendable, Codable, CaseIterable {
    case dm3, dm4, tiff, png
    /// MRC / MRCS (CCP-EM MRC2014 and older variants without the `MAP ` stamp).
    case mrc
    /// TIA (FEI/Thermo Fisher) series files; metadata from the `.emi` beside them.
    case ser
    /// Velox EMD (HDF5 with `/Data/Image/<uuid>/Data`).
    case emdVelox = "emd-velox"
    /// Berkeley EMD (HDF5 with `emd_group_type = 1` groups).
    case emdBerkeley = "emd-berkeley"

    /// The format whose signature starts `prefix`, or nil. DM: a big-endian version 3 or 4;
    /// TIFF: `II*\0`, `MM\0*` (classic) or `II+\0`, `MM\0+` (BigTIFF); PNG: its 8-byte signature;
    /// SER: `II` then series id 0x0197; HDF5 (EMD): its 8-byte signature, the flavour decided
    /// by the file's structure (`detect(fileAt:)`, `readMicrographHeader`); MRC: the `MAP `
    /// stamp at byte 208, or a header whose mode and sizes are plausible (needs 1024 bytes).
    public static func detect(_ prefix: UnsafeRawBufferPointer) -> MicrographFormat? {
        let bytes = Array(prefix.prefix(8))
        if bytes.count >= 8, bytes == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        if bytes.count >= 8, bytes == hdf5Signature { return .emdVelox }
        if bytes.count >= 4 {
            if bytes[0] == 0x49, bytes[1] == 0x49, bytes[2] == 42 || bytes[2] == 43, bytes[3] == 0 { return .tiff }
            if bytes[0] == 0x4D, bytes[1] == 0x4D, bytes[2] == 0, bytes[3] == 42 || bytes[3] == 43 { return .tiff }
            if bytes[0] == 0, bytes[1] == 0, bytes[2] == 0, bytes[3] == 3 { return .dm3 }
            if bytes[0] == 0, bytes[1] == 0, bytes[2] == 0, bytes[3] == 4 { return .dm4 }
            if bytes[0] == 0x49, bytes[1] == 0x49, bytes[2] == 0x97, bytes[3] == 0x01 { return .ser }
        }
        if MRCHeaderFields.looksLikeMRC(prefix) { return .mrc }
        return nil
    }

    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The format of the file at `url` (reads its first 1024 bytes; an HDF5 file is opened to
    /// tell Velox from Berkeley EMD).
    /// - Throws: `FormatError` when the file cannot be read or is none of the known formats.
    public static func detect(fileAt url: URL) throws -> MicrographFormat {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw FormatError(file: url.path, "cannot open for reading")
        }
        defer { try? handle.close() }
        let prefix = (try? handle.read(upToCount: 1024)) ?? Data()
        guard let format = prefix.withUnsafeBytes({ detect($0) }) else {
            throw FormatError(file: url.path, offset: 0, "not a DM3, DM4, TIFF, PNG, MRC, SER or EMD file (unknown signature \(hexString(Array(prefix.prefix(8)))))")
        }
        if format == .emdVelox { return try EMDFile.flavour(of: MappedFile(url: url)) }
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
    /// The detector or camera that recorded the frame (Velox `BinaryResult.Detector`, TIA camera).
    public var detector: String?
    /// Electron dose in e/A^2 where the file records one.
    public var doseElectronsPerA2: Double?
    /// The frame's title in a file of several (Velox display label, Berkeley EMD group name).
    public var title: String?

    public init() {}
}

/// Another image in the same file that is not the frame (a DM thumbnail, a later TIFF page).
public struct OtherImage: Sendable, Equatable, Codable {
    public var index: Int
    public var shape: [Int]
    public var pixelType: String
    public var note: String
}

/// Which image of a file holding several (EMD signals), and which plane of a stack.
///
/// Indices count from 0. A file with one image accepts signal 0 only; a 2-D image accepts
/// plane 0 only. Nil fields take the default: the first image signal; for `readFrame` plane 0,
/// for `readMicrograph` every plane.
public struct ImageSelection: Sendable, Equatable {
    public enum Signal: Sendable, Equatable {
        case index(Int)
        /// The image whose title (Velox display label, Berkeley group name) is this.
        case title(String)
    }
    public enum Plane: Sendable, Equatable {
        case index(Int)
        /// Every plane added up (as Float for `readFrame`, float64 for `readMicrograph`).
        case sum
    }
    public var signal: Signal?
    public var plane: Plane?

    public init(signal: Signal? = nil, plane: Plane? = nil) {
        self.signal = signal
        self.plane = plane
    }

    /// Parses the command line's `--signal` (a number or a title) and `--plane` (a number or
    /// `sum`) values.
    public init(signal: String?, plane: String?) {
        self.signal = signal.map { Int($0).map(Signal.index) ?? .title($0) }
        self.plane = plane.map { $0 == "sum" ? .sum : Int($0).map(Plane.index) ?? .index(-1) }
    }
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
    /// For DM: the 1-based index of the frame in `ImageList` (as tag paths count); for EMD the
    /// 1-based position of the signal among the file's image signals; 1 for the other formats.
    public var imageIndex: Int

    /// Planes of a stack (the product of the axes before y and x), 1 for 1-D and 2-D data.
    public var planeCount: Int { shape.count >= 3 ? shape.dropLast(2).reduce(1, *) : 1 }

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

/// Reads only the header of a micrograph file (DM3, DM4, TIFF, PNG, MRC, SER, EMD; format found
/// from its first bytes). Fast: the file is memory-mapped and the pixel data is never touched.
/// `selection` picks the image signal of an EMD file (a plane it names is checked to exist).
/// - Throws: `FormatError` naming the file and the byte offset of what is wrong.
public func readMicrographHeader(at url: URL, selecting selection: ImageSelection = ImageSelection()) throws -> MicrographHeader {
    let file = try MappedFile(url: url)
    return try readMicrographHeader(file, selection)
}

/// As `readMicrographHeader(at:)`, for bytes in memory; `name` is the file named in errors.
public func readMicrographHeader(bytes: Data, name: String, selecting selection: ImageSelection = ImageSelection()) throws -> MicrographHeader {
    try readMicrographHeader(MappedFile(bytes: bytes, name: name), selection)
}

/// As `readMicrograph(at:)`, for bytes in memory; `name` is the file named in errors.
public func readMicrograph(bytes: Data, name: String, selecting selection: ImageSelection = ImageSelection()) throws -> MicrographImage {
    try readMicrograph(MappedFile(bytes: bytes, name: name), selection)
}

/// As `readFrame(at:)`, for bytes in memory; `name` is the file named in errors.
public func readFrame(bytes: Data, name: String, selecting selection: ImageSelection = ImageSelection()) throws -> Frame {
    try readFrame(MappedFile(bytes: bytes, name: name), selection)
}

func readMicrographHeader(_ file: MappedFile, _ selection: ImageSelection = ImageSelection()) throws -> MicrographHeader {
    guard let format = MicrographFormat.detect(file.bytes) else {
        throw FormatError(file: file.name, offset: 0, "not a DM3, DM4, TIFF, PNG, MRC, SER or EMD file (unknown signature)")
    }
    let header: MicrographHeader
    switch format {
    case .dm3, .dm4:
        var parser = DMParser(bytes: file.bytes, file: file.name)
        header = try parser.parseHeader()
    case .tiff: header = try TIFFFile(bytes: file.bytes, file: file.name).header()
    case .png: header = try readPNGHeader(file.bytes, file: file.name)
    case .mrc: header = try MRCFile(file).header
    case .ser: header = try SERFile(file).header
    case .emdVelox, .emdBerkeley: return try checkPlane(EMDFile(file, signal: selection.signal).header, selection, file)
    }
    if let signal = selection.signal, signal != .index(0) {
        throw FormatError(file: file.name, offset: 0, "\(signal) selects an image signal, but this \(format.rawValue.uppercased()) file holds one image (signal 0)")
    }
    return try checkPlane(header, selection, file)
}

/// Refuses a plane index the image does not have.
func checkPlane(_ header: MicrographHeader, _ selection: ImageSelection, _ file: MappedFile) throws -> MicrographHeader {
    if case .index(let plane)? = selection.plane, plane < 0 || plane >= header.planeCount {
        throw FormatError(file: file.name, offset: header.dataOffset ?? 0,
                          "plane \(plane) does not exist: the image \(header.shape) has \(header.planeCount) plane(s), numbered from 0")
    }
    return header
}

/// Reads a whole file: header and every pixel as stored (1-D, 2-D or 3-D); with a plane in
/// `selection`, that plane alone (2-D; the sum of all planes as float64 for `.sum`).
/// - Throws: `FormatError` naming the file and the byte offset of what is wrong.
public func readMicrograph(at url: URL, selecting selection: ImageSelection = ImageSelection()) throws -> MicrographImage {
    try readMicrograph(MappedFile(url: url), selection)
}

func readMicrograph(_ file: MappedFile, _ selection: ImageSelection = ImageSelection()) throws -> MicrographImage {
    let header = try readMicrographHeader(file, selection)
    switch header.format {
    case .tiff:
        let bytes = try TIFFFile(bytes: file.bytes, file: file.name).readFirstPage(header: header)
        return MicrographImage(header: header, data: NPYArray(shape: header.shape, pixelType: header.pixelType, bytes: bytes))
    case .png:
        let image = try decodePNG(file.bytes, file: file.name)
        return MicrographImage(header: header, data: image.npy)
    default:
        let source = try planeSource(file, header, selection)
        let planeElements = header.elementCount / header.planeCount
        switch selection.plane {
        case nil:
            let byteCount = header.elementCount * header.pixelType.byteCount
            let bytes = try [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
                if byteCount > 0 {
                    adviseHugePages(buffer.baseAddress!, byteCount: byteCount)
                    try source.readAll(into: buffer.baseAddress!)
                }
                initialized = byteCount
            }
            return MicrographImage(header: header, data: NPYArray(shape: header.shape, pixelType: header.pixelType, bytes: bytes))
        case .index(let plane)?:
            let byteCount = planeElements * header.pixelType.byteCount
            let bytes = try [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
                if byteCount > 0 { try source.readPlane(plane, into: buffer.baseAddress!) }
                initialized = byteCount
            }
            var planeHeader = header
            planeHeader.shape = Array(header.shape.suffix(2))
            planeHeader.calibrations = Array(header.calibrations.suffix(2))
            return MicrographImage(header: planeHeader, data: NPYArray(shape: planeHeader.shape, pixelType: header.pixelType, bytes: bytes))
        case .sum?:
            var total = [Double](repeating: 0, count: planeElements)
            var plane = [Float](repeating: 0, count: planeElements)
            for index in 0..<header.planeCount {
                try plane.withUnsafeMutableBufferPointer { try source.readPlaneAsFloat(index, into: $0.baseAddress!) }
                for i in 0..<planeElements { total[i] += Double(plane[i]) }
            }
            var planeHeader = header
            planeHeader.shape = Array(header.shape.suffix(2))
            planeHeader.calibrations = Array(header.calibrations.suffix(2))
            planeHeader.pixelType = .float64
            return MicrographImage(header: planeHeader, data: NPYArray(shape: planeHeader.shape, pixelType: .float64,
                                                                        bytes: total.withUnsafeBytes { Array($0) }))
        }
    }
}

/// Reads the frame as Float pixels in one pass (no intermediate copy of the stored pixels:
/// little-endian float32 is read straight into the result; other types are converted from
/// the memory-mapped file). 1-D data is one row; 3-D data gives the plane `selection` names
/// (plane 0 by default, or the sum of every plane).
/// - Throws: `FormatError` naming the file and the byte offset of what is wrong.
public func readFrame(at url: URL, selecting selection: ImageSelection = ImageSelection()) throws -> Frame {
    try readFrame(MappedFile(url: url), selection)
}

func readFrame(_ file: MappedFile, _ selection: ImageSelection = ImageSelection()) throws -> Frame {
    let header = try readMicrographHeader(file, selection)
    let width = header.width, height = header.shape.count >= 2 ? header.height : 1
    let count = width * height
    switch header.format {
    case .tiff, .png:
        let micrograph = try readMicrograph(file, selection)
        return Frame(header: header, raster: micrograph.raster)
    default:
        let source = try planeSource(file, header, selection)
        let pixels = try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 {
                adviseHugePages(buffer.baseAddress!, byteCount: count * 4)
                switch selection.plane ?? .index(0) {
                case .index(let plane):
                    try source.readPlaneAsFloat(plane, into: buffer.baseAddress!)
                case .sum:
                    var total = [Double](repeating: 0, count: count)
                    for plane in 0..<header.planeCount {
                        try source.readPlaneAsFloat(plane, into: buffer.baseAddress!)
                        for i in 0..<count { total[i] += Double(buffer[i]) }
                    }
                    for i in 0..<count { buffer[i] = Float(total[i]) }
                }
            }
            initialized = count
        }
        return Frame(header: header, raster: Raster(width: width, height: height, pixels: pixels))
    }
}

/// A reader that hands over the planes of the image a header describes.
protocol PlaneSource {
    var header: MicrographHeader { get }
    /// Plane `index` (0 ..< planeCount) as little-endian bytes of `header.pixelType`, C order.
    func readPlane(_ index: Int, into destination: UnsafeMutableRawPointer) throws
    /// Plane `index` converted to Float.
    func readPlaneAsFloat(_ index: Int, into destination: UnsafeMutablePointer<Float>) throws
    /// Every plane, one after another.
    func readAll(into destination: UnsafeMutableRawPointer) throws
}

extension PlaneSource {
    var planeElements: Int { header.elementCount / max(header.planeCount, 1) }

    func readPlaneAsFloat(_ index: Int, into destination: UnsafeMutablePointer<Float>) throws {
        if header.pixelType == .float32 {
            try readPlane(index, into: UnsafeMutableRawPointer(destination))
            return
        }
        let count = planeElements
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(count * header.pixelType.byteCount, 1), alignment: 16)
        defer { scratch.deallocate() }
        try readPlane(index, into: scratch)
        convertToFloat(scratch, count: count, from: header.pixelType, swapBytes: false, into: destination)
    }

    func readAll(into destination: UnsafeMutableRawPointer) throws {
        let planeBytes = planeElements * header.pixelType.byteCount
        for plane in 0..<header.planeCount { try readPlane(plane, into: destination + plane * planeBytes) }
    }
}

/// The reader for a header's format (DM, MRC, SER, EMD).
func planeSource(_ file: MappedFile, _ header: MicrographHeader, _ selection: ImageSelection) throws -> PlaneSource {
    switch header.format {
    case .dm3, .dm4:
        return ContiguousPlanes(file: file, header: header, offset: header.dataOffset!, storedFloat16: false)
    case .mrc: return try MRCFile(file).planes
    case .ser: return try SERFile(file)
    case .emdVelox, .emdBerkeley: return try EMDFile(file, signal: selection.signal)
    case .tiff, .png: throw FormatError(file: file.name, offset: 0, "\(header.format.rawValue) pages are read whole")
    }
}

/// Planes stored one after another in one run of bytes (DM, MRC): read with pread, byte-swapped
/// when stored big-endian, widened from float16 for MRC mode 12.
struct ContiguousPlanes: PlaneSource {
    let file: MappedFile
    let header: MicrographHeader
    let offset: Int
    let storedFloat16: Bool

    var storedElementSize: Int { storedFloat16 ? 2 : header.pixelType.byteCount }

    func readPlane(_ index: Int, into destination: UnsafeMutableRawPointer) throws {
        try read(elementOffset: index * planeElements, count: planeElements, into: destination)
    }

    func readAll(into destination: UnsafeMutableRawPointer) throws {
        try read(elementOffset: 0, count: header.elementCount, into: destination)
    }

    func read(elementOffset: Int, count: Int, into destination: UnsafeMutableRawPointer) throws {
        let start = offset + elementOffset * storedElementSize
        if storedFloat16 {
            let base = try mapped(start, count * 2)
            let out = destination.assumingMemoryBound(to: Float.self)
            let swap = header.byteOrder == .bigEndian
            for i in 0..<count {
                let raw = base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                out[i] = Float(Float16(bitPattern: swap ? raw.byteSwapped : raw))
            }
            return
        }
        try file.read(offset: start, count: count * storedElementSize, into: destination)
        if header.byteOrder == .bigEndian { swapInPlace(destination, count: count, elementSize: storedElementSize) }
    }

    func readPlaneAsFloat(_ index: Int, into destination: UnsafeMutablePointer<Float>) throws {
        let count = planeElements
        if header.pixelType == .float32 && (storedFloat16 || header.byteOrder == .littleEndian) {
            try readPlane(index, into: UnsafeMutableRawPointer(destination))
            return
        }
        let base = try mapped(offset + index * count * storedElementSize, count * storedElementSize)
        convertToFloat(base, count: count, from: header.pixelType, swapBytes: header.byteOrder == .bigEndian, into: destination)
    }

    /// The mapped bytes at `start`, checked to hold `count` bytes.
    func mapped(_ start: Int, _ count: Int) throws -> UnsafeRawPointer {
        guard start >= 0, count >= 0, start <= file.count - count else {
            throw FormatError(file: file.name, offset: start, "\(count) bytes of pixels at byte \(start) run past the end of the file (\(file.count) bytes)")
        }
        return UnsafeRawPointer(file.bytes.baseAddress!) + start
    }
}

func swapInPlace(_ pointer: UnsafeMutableRawPointer, count: Int, elementSize: Int) {
    switch elementSize {
    case 2: let p = pointer.assumingMemoryBound(to: UInt16.self); for i in 0..<count { p[i] = p[i].byteSwapped }
    case 4: let p = pointer.assumingMemoryBound(to: UInt32.self); for i in 0..<count { p[i] = p[i].byteSwapped }
    case 8: let p = pointer.assumingMemoryBound(to: UInt64.self); for i in 0..<count { p[i] = p[i].byteSwapped }
    default: break
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
