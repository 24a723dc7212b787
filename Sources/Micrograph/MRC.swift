import Foundation

/// The fixed 1024-byte MRC header (CCP-EM MRC2014; older files without the `MAP ` stamp are
/// read the same way). Words are 4 bytes in the byte order `MACHST` names (0x44 little-endian,
/// 0x11 big-endian).
enum MRCHeaderFields {
    static let headerSize = 1024
    /// Modes hrtem knows: 0 8-bit, 1 int16, 2 float32, 3 complex int16, 4 complex float32,
    /// 6 uint16, 12 float16.
    static let knownModes: Set<Int32> = [0, 1, 2, 3, 4, 6, 12]

    /// Whether `bytes` start like an MRC file: the `MAP ` stamp at byte 208 with a known mode,
    /// or (older files) positive sizes, a known mode and axis mapping a permutation of 1, 2, 3.
    static func looksLikeMRC(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= headerSize else { return false }
        let stamped = bytes[208] == 0x4D && bytes[209] == 0x41 && bytes[210] == 0x50 && bytes[211] == 0x20
        for little in [true, false] {
            func word(_ at: Int) -> Int32 {
                let raw = bytes.loadUnaligned(fromByteOffset: at, as: Int32.self)
                return little ? Int32(littleEndian: raw) : Int32(bigEndian: raw)
            }
            guard knownModes.contains(word(12)) else { continue }
            if stamped { return true }
            let sizes = [word(0), word(4), word(8)]
            let mapping = Set([word(64), word(68), word(72)])
            if sizes.allSatisfy({ $0 > 0 }), mapping == [1, 2, 3], word(92) >= 0 { return true }
        }
        return false
    }
}

/// An MRC or MRCS file: the header, the tags it holds (every header field, the labels, the
/// legacy FEI extended header's first record) and its pixels, which start after the extended
/// header (`NSYMBT` bytes) and are read straight from the mapping.
///
/// Shape: `[ny, nx]` for one section, `[nz, ny, nx]` for a stack (MRCS movies, tilt series).
/// Calibration: `cella / mx` (and y, z) in Angstrom, given in nm; when the extended header is
/// FEI's legacy one (`NSYMBT` = 131072, 1024 records of 128 bytes), its pixel size in metres
/// instead, as FEI software writes it. Mode 0 is read as uint8 (unsigned unless the IMOD
/// stamp's flag says signed bytes), mode 12 (float16) is widened exactly to float32; complex
/// modes 3 and 4 are refused.
struct MRCFile {
    let file: MappedFile
    let header: MicrographHeader
    let storedFloat16: Bool

    var planes: ContiguousPlanes {
        ContiguousPlanes(file: file, header: header, offset: header.dataOffset!, storedFloat16: storedFloat16)
    }

    init(_ file: MappedFile) throws {
        self.file = file
        let bytes = file.bytes
        let name = file.name
        guard bytes.count >= MRCHeaderFields.headerSize else {
            throw FormatError(file: name, offset: bytes.count, "an MRC header needs 1024 bytes, the file has \(bytes.count)")
        }
        var little = true
        if bytes[212] == 0x11 { little = false }
        else if bytes[212] != 0x44 {
            // No machine stamp: the byte order whose mode is one MRC knows.
            let le = Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: Int32.self))
            little = MRCHeaderFields.knownModes.contains(le)
        }
        func int(_ at: Int) -> Int32 {
            let raw = bytes.loadUnaligned(fromByteOffset: at, as: Int32.self)
            return little ? Int32(littleEndian: raw) : Int32(bigEndian: raw)
        }
        func real(_ at: Int) -> Double {
            let raw = bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)
            return Double(Float(bitPattern: little ? UInt32(littleEndian: raw) : UInt32(bigEndian: raw)))
        }
        func text(_ at: Int, _ count: Int) -> String {
            let slice = bytes[at..<(at + count)].prefix { $0 != 0 }
            return String(String.UnicodeScalarView(slice.map { Unicode.Scalar($0) })).trimmingCharacters(in: .whitespaces)
        }
        let nx = Int(int(0)), ny = Int(int(4)), nz = Int(int(8)), mode = int(12)
        for (index, size) in [nx, ny, nz].enumerated() where size < 1 {
            throw FormatError(file: name, offset: 4 * index, "MRC size \(["NX", "NY", "NZ"][index]) must be at least 1, found \(size)")
        }
        let pixelType: PixelType
        switch mode {
        case 0:
            // IMOD marks signed bytes with bit 0 of its flags (byte 156) after its stamp.
            let imod = bytes[152] == 0x49 && bytes[153] == 0x4D && bytes[154] == 0x4F && bytes[155] == 0x44
            pixelType = imod && bytes[156] & 1 == 1 ? .int8 : .uint8
        case 1: pixelType = .int16
        case 2, 12: pixelType = .float32
        case 6: pixelType = .uint16
        case 3, 4:
            throw FormatError(file: name, offset: 12, "complex MRC data (mode \(mode)) is not supported: hrtem reads real-valued frames only")
        default:
            throw FormatError(file: name, offset: 12, "unknown MRC mode \(mode) (expected 0, 1, 2, 6 or 12)")
        }
        storedFloat16 = mode == 12
        let elementSize = mode == 12 ? 2 : pixelType.byteCount
        let extended = Int(int(92))
        guard extended >= 0, extended <= bytes.count - MRCHeaderFields.headerSize else {
            throw FormatError(file: name, offset: 92, "MRC extended header size NSYMBT \(extended) does not fit the file (\(bytes.count) bytes)")
        }
        let dataOffset = MRCHeaderFields.headerSize + extended
        let (plane, overflow1) = nx.multipliedReportingOverflow(by: ny)
        let (elements, overflow2) = plane.multipliedReportingOverflow(by: nz)
        let (byteCount, overflow3) = elements.multipliedReportingOverflow(by: elementSize)
        guard !overflow1, !overflow2, !overflow3, byteCount <= bytes.count - dataOffset else {
            throw FormatError(file: name, offset: dataOffset,
                              "MRC data \(nz) x \(ny) x \(nx) of mode \(mode) needs \(nx) x \(ny) x \(nz) x \(elementSize) bytes from byte \(dataOffset), the file has \(bytes.count) bytes")
        }

        var fields = [DMTag]()
        func add(_ key: String, _ value: DMTagValue, _ at: Int) { fields.append(DMTag(name: key, value: value, offset: at)) }
        for (key, at) in [("NX", 0), ("NY", 4), ("NZ", 8), ("MODE", 12), ("NXSTART", 16), ("NYSTART", 20), ("NZSTART", 24),
                          ("MX", 28), ("MY", 32), ("MZ", 36), ("MAPC", 64), ("MAPR", 68), ("MAPS", 72), ("ISPG", 88),
                          ("NSYMBT", 92), ("NVERSION", 108), ("NLABL", 220)] {
            add(key, .integer(Int64(int(at))), at)
        }
        for (key, at) in [("CELLA.X", 40), ("CELLA.Y", 44), ("CELLA.Z", 48), ("CELLB.ALPHA", 52), ("CELLB.BETA", 56),
                          ("CELLB.GAMMA", 60), ("DMIN", 76), ("DMAX", 80), ("DMEAN", 84), ("ORIGIN.X", 196),
                          ("ORIGIN.Y", 200), ("ORIGIN.Z", 204), ("RMS", 216)] {
            add(key, .real(real(at)), at)
        }
        add("EXTTYP", .text(text(104, 4)), 104)
        add("MACHST", .text(hexString(Array(bytes[212..<216]))), 212)
        let labelCount = min(max(Int(int(220)), 0), 10)
        for i in 0..<labelCount { add("LABEL.\(i + 1)", .text(text(224 + 80 * i, 80)), 224 + 80 * i) }

        func axis(length: Double, samples: Int32, origin: Double) -> AxisCalibration {
            guard samples > 0, length != 0, length.isFinite else { return AxisCalibration() }
            let scale = length / Double(samples) / 10
            return AxisCalibration(scale: scale, origin: origin.isFinite && origin != 0 ? -(origin / 10) / scale : 0, unit: "nm")
        }
        var x = axis(length: real(40), samples: int(28), origin: real(196))
        var y = axis(length: real(44), samples: int(32), origin: real(200))
        let z = axis(length: real(48), samples: int(36), origin: real(204))
        var facts = MicroscopeFacts()
        // FEI's legacy extended header: 1024 records of 13 float32 values padded to 128 bytes.
        if extended == 131_072, text(104, 4) != "FEI1", text(104, 4) != "FEI2" {
            let record = MRCHeaderFields.headerSize
            let names = ["alpha tilt", "beta tilt", "stage x", "stage y", "stage z", "image shift x", "image shift y",
                         "defocus", "exposure time", "mean intensity", "tilt axis", "pixel size", "magnification"]
            var values = [Double]()
            for (i, key) in names.enumerated() {
                values.append(real(record + 4 * i))
                add("FEI." + key, .real(values[i]), record + 4 * i)
            }
            if values[11] > 0, values[11].isFinite {
                x = AxisCalibration(scale: values[11] * 1e9, origin: 0, unit: "nm")
                y = x
            }
            if values[8] > 0, values[8].isFinite { facts.exposureSeconds = values[8] }
            if values[12] > 0, values[12].isFinite { facts.indicatedMagnification = values[12] }
        }
        if x.unit == "nm", x.scale > 0 { facts.pixelSizeNM = x.scale }
        facts.pixelUnit = x.unit
        let shape = nz == 1 ? [ny, nx] : [nz, ny, nx]
        let calibrations = nz == 1 ? [y, x] : [z, y, x]
        header = MicrographHeader(file: name, format: .mrc, shape: shape, pixelType: pixelType, calibrations: calibrations,
                                  byteOrder: little ? .littleEndian : .bigEndian, dataOffset: dataOffset,
                                  tags: DMTagGroup(tags: [DMTag(name: "MRC", value: .group(DMTagGroup(tags: fields)), offset: 0)]),
                                  microscope: facts, otherImages: [], imageIndex: 1)
    }
}

/// Writes planes (one section, or a stack as MRCS writes movies) as an MRC2014 file,
/// little-endian, pixels bit-exact: UInt8 as mode 0, Int16 mode 1, Float mode 2, UInt16 mode
/// 6; `float16: true` stores Float planes as mode 12 (rounded to the nearest float16).
/// `pixelSizeNM` sets `cella = size x pixel size` (Angstrom) with `mx = nx`; `labels` (at most
/// 10, 80 bytes each) go into the label block. The file appears atomically.
/// - Throws: `FormatError` naming the file for an element type MRC cannot hold, planes of
///   different sizes, or a failed write.
public func writeMRC<P: StoredPixel>(_ planes: [Raster<P>], to url: URL, pixelSizeNM: Double? = nil,
                                     float16: Bool = false, labels: [String] = []) throws {
    guard let first = planes.first else { throw FormatError(file: url.path, "an MRC file needs at least one plane") }
    guard planes.allSatisfy({ $0.width == first.width && $0.height == first.height }) else {
        throw FormatError(file: url.path, "MRC planes must all be \(first.width) x \(first.height)")
    }
    let mode: Int32
    switch P.pixelType {
    case .uint8: mode = 0
    case .int16: mode = 1
    case .float32: mode = float16 ? 12 : 2
    case .uint16: mode = 6
    default: throw FormatError(file: url.path, "MRC cannot store \(P.pixelType) pixels (uint8, int16, uint16, float32 or float16)")
    }
    if float16 && P.pixelType != .float32 { throw FormatError(file: url.path, "float16 MRC is written from Float planes") }
    var statistics = (min: Double.infinity, max: -Double.infinity, sum: 0.0, squares: 0.0)
    var payload = [UInt8]()
    payload.reserveCapacity(planes.count * first.count * (mode == 12 ? 2 : P.pixelType.byteCount))
    for plane in planes {
        if mode == 12 {
            for value in plane.pixels as! [Float] {
                let half = Float16(value)
                let stored = Double(Float(half))
                statistics = (min(statistics.min, stored), max(statistics.max, stored), statistics.sum + stored, statistics.squares + stored * stored)
                withUnsafeBytes(of: half.bitPattern.littleEndian) { payload.append(contentsOf: $0) }
            }
        } else {
            payload.append(contentsOf: plane.littleEndianBytes)
            plane.pixels.withUnsafeBytes { raw in
                for i in 0..<plane.count {
                    let value: Double
                    switch P.pixelType {
                    case .uint8: value = Double(raw.load(fromByteOffset: i, as: UInt8.self))
                    case .int16: value = Double(raw.load(fromByteOffset: 2 * i, as: Int16.self))
                    case .uint16: value = Double(raw.load(fromByteOffset: 2 * i, as: UInt16.self))
                    default: value = Double(raw.load(fromByteOffset: 4 * i, as: Float.self))
                    }
                    statistics = (min(statistics.min, value), max(statistics.max, value), statistics.sum + value, statistics.squares + value * value)
                }
            }
        }
    }
    let count = Double(planes.count * first.count)
    let mean = count > 0 ? statistics.sum / count : 0
    let rms = count > 0 ? max(statistics.squares / count - mean * mean, 0).squareRoot() : 0
    var header = [UInt8](repeating: 0, count: MRCHeaderFields.headerSize)
    func put(_ value: Int32, _ at: Int) { withUnsafeBytes(of: value.littleEndian) { for i in 0..<4 { header[at + i] = $0[i] } } }
    func put(_ value: Float, _ at: Int) { put(Int32(bitPattern: value.bitPattern), at) }
    put(Int32(first.width), 0); put(Int32(first.height), 4); put(Int32(planes.count), 8); put(mode, 12)
    put(Int32(first.width), 28); put(Int32(first.height), 32); put(Int32(planes.count), 36)
    let angstrom = (pixelSizeNM ?? 0) * 10
    put(Float(angstrom * Double(first.width)), 40); put(Float(angstrom * Double(first.height)), 44)
    put(Float(planes.count > 1 ? 0 : angstrom), 48)
    put(Float(90), 52); put(Float(90), 56); put(Float(90), 60)
    put(Int32(1), 64); put(Int32(2), 68); put(Int32(3), 72)
    put(Float(count > 0 ? statistics.min : 0), 76); put(Float(count > 0 ? statistics.max : 0), 80); put(Float(mean), 84)
    put(Int32(planes.count > 1 ? 0 : 1), 88)
    put(Int32(20140), 108)
    for (i, byte) in "MAP ".utf8.enumerated() { header[208 + i] = byte }
    header[212] = 0x44; header[213] = 0x44
    put(Float(rms), 216)
    let kept = labels.prefix(10)
    put(Int32(kept.count), 220)
    for (i, label) in kept.enumerated() {
        for (j, byte) in label.utf8.prefix(80).enumerated() { header[224 + 80 * i + j] = byte }
    }
    try writeFileAtomically(Data(header + payload), to: url)
}
