import Foundation

/// Parser of Gatan DigitalMicrograph 3 and 4 files.
///
/// Layout: a header (DM3: version, root length as UInt32, byte order; DM4: the length as
/// UInt64; 12 or 16 bytes, big-endian), then the root tag group. Structure fields (counts,
/// type descriptors, name lengths) are big-endian; tag values and pixels are in the byte order
/// the header names (1 = little-endian). Every count is checked against the bytes left before
/// anything is allocated, and groups nest at most `maximumDepth` deep, so a corrupt file ends
/// in a `FormatError` naming the offset, never a crash or an unbounded allocation.
struct DMParser {
    static let maximumDepth = 64
    /// Arrays at most this long keep their values in the tag tree (text, small lists).
    static let smallArrayLimit = 64
    static let textArrayLimit = 4096

    let bytes: UnsafeRawBufferPointer
    let file: String
    var position = 0
    var version = 3
    var littleEndian = true

    init(bytes: UnsafeRawBufferPointer, file: String) {
        self.bytes = bytes
        self.file = file
    }

    func error(_ offset: Int, _ message: String) -> FormatError {
        FormatError(file: file, offset: offset, message)
    }

    var remaining: Int { bytes.count - position }

    mutating func need(_ count: Int, _ what: @autoclosure () -> String) throws {
        guard count >= 0, count <= remaining else {
            throw error(position, "\(what()) needs \(count) bytes, only \(remaining) left in the file")
        }
    }

    mutating func byte() throws -> UInt8 {
        try need(1, "a byte")
        defer { position += 1 }
        return bytes[position]
    }

    mutating func bigEndian<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        try need(MemoryLayout<T>.size, "a big-endian \(T.self)")
        defer { position += MemoryLayout<T>.size }
        return T(bigEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    /// A structure count: UInt32 in DM3, UInt64 in DM4.
    mutating func count(_ what: String) throws -> Int {
        let start = position
        let value: UInt64 = version == 3 ? UInt64(try bigEndian(UInt32.self)) : try bigEndian(UInt64.self)
        guard value <= UInt64(bytes.count) else {
            throw error(start, "\(what) \(value) is larger than the file (\(bytes.count) bytes)")
        }
        return Int(value)
    }

    func scalar<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        let raw = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        return littleEndian ? T(littleEndian: raw) : T(bigEndian: raw)
    }

    static func elementSize(_ type: Int) -> Int? {
        switch type {
        case 2, 4: return 2
        case 3, 5, 6: return 4
        case 7, 11, 12: return 8
        case 8, 9, 10: return 1
        default: return nil
        }
    }

    /// Reads one scalar of DM encoded `type` at the current position.
    mutating func scalarValue(type: Int) throws -> DMTagValue {
        guard let size = DMParser.elementSize(type) else {
            throw error(position, "unknown DM data type \(type)")
        }
        try need(size, "a value of DM type \(type)")
        let at = position
        position += size
        switch type {
        case 2: return .integer(Int64(scalar(Int16.self, at: at)))
        case 3: return .integer(Int64(scalar(Int32.self, at: at)))
        case 4: return .unsigned(UInt64(scalar(UInt16.self, at: at)))
        case 5: return .unsigned(UInt64(scalar(UInt32.self, at: at)))
        case 6: return .real(Double(Float(bitPattern: scalar(UInt32.self, at: at))))
        case 7: return .real(Double(bitPattern: scalar(UInt64.self, at: at)))
        case 8: return .boolean(bytes[at] != 0)
        case 9: return .integer(Int64(Int8(bitPattern: bytes[at])))
        case 10: return .unsigned(UInt64(bytes[at]))
        case 11: return .integer(scalar(Int64.self, at: at))
        default: return .unsigned(scalar(UInt64.self, at: at))
        }
    }

    mutating func parseRoot() throws -> DMTagGroup {
        position = 0
        let versionNumber = try bigEndian(UInt32.self)
        guard versionNumber == 3 || versionNumber == 4 else {
            throw error(0, "not a DM3/DM4 file (version \(versionNumber))")
        }
        version = Int(versionNumber)
        _ = try count("root length")
        let order = try bigEndian(UInt32.self)
        guard order <= 1 else { throw error(position - 4, "byte order flag must be 0 or 1, found \(order)") }
        littleEndian = order == 1
        return try parseGroup(depth: 0)
    }

    mutating func parseGroup(depth: Int) throws -> DMTagGroup {
        guard depth < DMParser.maximumDepth else {
            throw error(position, "tag groups nested more than \(DMParser.maximumDepth) deep")
        }
        _ = try byte()  // sorted
        _ = try byte()  // open
        let countOffset = position
        let tagCount = try count("tag count")
        // Every entry takes at least 3 bytes (kind + name length), 11 in DM4.
        let minimumEntry = version == 3 ? 3 : 11
        guard tagCount <= remaining / minimumEntry else {
            throw error(countOffset, "group claims \(tagCount) tags but only \(remaining) bytes are left")
        }
        var tags = [DMTag]()
        tags.reserveCapacity(tagCount)
        for _ in 0..<tagCount {
            let start = position
            let kind = try byte()
            let nameLength = Int(try bigEndian(UInt16.self))
            try need(nameLength, "a tag name")
            // Names are 8-bit (Latin-1 in practice); decode byte for byte so nothing is lost.
            let name = String(String.UnicodeScalarView(bytes[position..<(position + nameLength)].map { Unicode.Scalar($0) }))
            position += nameLength
            var end: Int?
            if version == 4 {
                let sizeOffset = position
                let size = try count("tag size")
                guard size <= remaining else { throw error(sizeOffset, "tag '\(name)' claims \(size) bytes, only \(remaining) left") }
                end = position + size
            }
            let value: DMTagValue
            switch kind {
            case 20: value = .group(try parseGroup(depth: depth + 1))
            case 21: value = try parseData(name: name)
            default:
                throw error(start, "unknown tag kind \(kind) (expected 20 for a group or 21 for data)")
            }
            if let end, position != end {
                throw error(start, "tag '\(name)' declares it ends at byte \(end) but its content ends at byte \(position)")
            }
            tags.append(DMTag(name: name, value: value, offset: start))
        }
        return DMTagGroup(tags: tags)
    }

    mutating func parseData(name: String) throws -> DMTagValue {
        let start = position
        try need(4, "the %%%% delimiter")
        guard bytes[position] == 0x25, bytes[position + 1] == 0x25, bytes[position + 2] == 0x25, bytes[position + 3] == 0x25 else {
            throw error(start, "tag '\(name)': expected the %%%% delimiter")
        }
        position += 4
        let infoOffset = position
        let infoCount = try count("type descriptor length")
        let fieldSize = version == 3 ? 4 : 8
        guard infoCount >= 1, infoCount <= remaining / fieldSize, infoCount <= 3 + 2 * 4096 else {
            throw error(infoOffset, "tag '\(name)': bad type descriptor length \(infoCount)")
        }
        var info = [Int]()
        info.reserveCapacity(infoCount)
        for _ in 0..<infoCount { info.append(try count("type descriptor entry")) }
        func bad(_ what: String) -> FormatError { error(infoOffset, "tag '\(name)': \(what) (descriptor \(info.prefix(8)))") }

        switch info[0] {
        case 2...12:
            guard infoCount == 1 else { throw bad("a scalar has one descriptor entry") }
            return try scalarValue(type: info[0])
        case 18:
            guard infoCount == 2 else { throw bad("a string has two descriptor entries") }
            let length = info[1]
            guard length <= remaining / 2 else { throw bad("string of \(length) characters runs past the end of the file") }
            let text = decodeUTF16(at: position, count: length)
            position += 2 * length
            return .text(text)
        case 15:
            let fields = try structFields(info, from: 1, bad: bad)
            guard 1 + 2 + 2 * fields.count == infoCount else { throw bad("struct descriptor length does not match its field count") }
            var values = [DMTagValue]()
            for type in fields { values.append(try scalarValue(type: type)) }
            return .structure(values)
        case 20:
            guard infoCount >= 3 else { throw bad("an array needs an element type and a count") }
            let elementType = info[1]
            let elementSize: Int
            if elementType == 15 {
                let fields = try structFields(info, from: 2, bad: bad)
                guard 2 + 2 + 2 * fields.count + 1 == infoCount else { throw bad("array-of-struct descriptor length does not match") }
                elementSize = fields.reduce(0) { $0 + DMParser.elementSize($1)! }
            } else {
                guard infoCount == 3 else { throw bad("array descriptor has \(infoCount) entries, expected 3") }
                guard let size = DMParser.elementSize(elementType) else { throw bad("unsupported array element type \(elementType)") }
                elementSize = size
            }
            let count = info[infoCount - 1]
            guard elementSize > 0, count <= remaining / elementSize else {
                throw error(position, "tag '\(name)': array of \(count) x \(elementSize) bytes runs past the end of the file (\(remaining) bytes left)")
            }
            let array = DMArray(elementType: elementType, elementSize: elementSize, count: count, offset: position,
                                values: elementType != 15 && count <= DMParser.smallArrayLimit ? arrayValues(elementType, count) : nil)
            position += count * elementSize
            if elementType == 4, count <= DMParser.textArrayLimit, name != "Data" {
                return .text(decodeUTF16(at: array.offset, count: count))
            }
            return .array(array)
        default:
            throw bad("unknown DM data type \(info[0])")
        }
    }

    func structFields(_ info: [Int], from start: Int, bad: (String) -> FormatError) throws -> [Int] {
        guard info.count >= start + 2 else { throw bad("struct descriptor too short") }
        let fieldCount = info[start + 1]
        guard fieldCount <= 4096, info.count >= start + 2 + 2 * fieldCount else { throw bad("struct claims \(fieldCount) fields") }
        var types = [Int]()
        for i in 0..<fieldCount {
            let type = info[start + 2 + 2 * i + 1]
            guard DMParser.elementSize(type) != nil else { throw bad("unsupported struct field type \(type)") }
            types.append(type)
        }
        return types
    }

    func arrayValues(_ type: Int, _ count: Int) -> [Double] {
        var copy = self
        var values = [Double]()
        for _ in 0..<count { values.append((try? copy.scalarValue(type: type))?.doubleValue ?? .nan) }
        return values
    }

    func decodeUTF16(at offset: Int, count: Int) -> String {
        var units = [UInt16]()
        units.reserveCapacity(count)
        for i in 0..<count { units.append(scalar(UInt16.self, at: offset + 2 * i)) }
        while units.last == 0 { units.removeLast() }
        return String(decoding: units, as: UTF16.self)
    }

    /// Parses the tag tree and picks the frame: the largest image of `ImageList` that is not
    /// an RGB thumbnail (DataType 23), the first of equals.
    mutating func parseHeader() throws -> MicrographHeader {
        let root = try parseRoot()
        guard case .group(let imageList)? = root["ImageList"] else {
            throw error(0, "no ImageList group: this DM file holds no image")
        }
        struct Candidate { var index: Int; var shape: [Int]; var dataType: Int; var data: DMArray; var image: DMTagGroup; var offset: Int }
        var candidates = [Candidate]()
        for (i, entry) in imageList.tags.enumerated() {
            guard case .group(let image) = entry.value, case .group(let imageData)? = image["ImageData"] else { continue }
            guard case .array(let data)? = imageData["Data"] else {
                throw error(entry.offset, "ImageList.\(i + 1).ImageData has no Data array")
            }
            guard let dataType = imageData["DataType"]?.doubleValue else {
                throw error(entry.offset, "ImageList.\(i + 1).ImageData has no DataType")
            }
            guard case .group(let dimensions)? = imageData["Dimensions"], !dimensions.tags.isEmpty, dimensions.tags.count <= 4 else {
                throw error(entry.offset, "ImageList.\(i + 1).ImageData has no usable Dimensions")
            }
            var shape = [Int]()
            for dimension in dimensions.tags {
                guard let n = dimension.value.doubleValue, n >= 1, n <= Double(Int32.max) else {
                    throw error(dimension.offset, "ImageList.\(i + 1): bad dimension \(dimension.value.summary)")
                }
                shape.insert(Int(n), at: 0)  // DM lists x first; shape is slowest-first
            }
            candidates.append(Candidate(index: i + 1, shape: shape, dataType: Int(dataType), data: data, image: image, offset: entry.offset))
        }
        guard !candidates.isEmpty else { throw error(0, "ImageList holds no image data") }
        let pool = candidates.contains { $0.dataType != 23 } ? candidates.filter { $0.dataType != 23 } : candidates
        let frame = pool.max { a, b in
            let ea = a.shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            let eb = b.shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            return ea < eb || (ea == eb && a.index > b.index)
        }!
        let pixelType = try DMParser.pixelType(dataType: frame.dataType, file: file, offset: frame.offset)
        var elements = 1
        for n in frame.shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: n)
            guard !overflow else { throw error(frame.offset, "image dimensions \(frame.shape) overflow") }
            elements = product
        }
        guard elements <= frame.data.byteCount / pixelType.byteCount,
              elements * pixelType.byteCount == frame.data.byteCount else {
            throw error(frame.data.offset, "image \(frame.shape) of \(pixelType) needs \(elements * pixelType.byteCount) bytes, its Data array holds \(frame.data.byteCount)")
        }
        let imageData = frame.image["ImageData"]!.group!
        var calibrations = [AxisCalibration](repeating: AxisCalibration(), count: frame.shape.count)
        if case .group(let dimensionCalibrations)? = imageData.value(at: "Calibrations.Dimension") {
            for (axis, entry) in dimensionCalibrations.tags.prefix(frame.shape.count).enumerated() {
                guard case .group(let calibration) = entry.value else { continue }
                let slot = frame.shape.count - 1 - axis
                calibrations[slot] = AxisCalibration(scale: calibration["Scale"]?.doubleValue ?? 1,
                                                     origin: calibration["Origin"]?.doubleValue ?? 0,
                                                     unit: calibration["Units"]?.stringValue ?? "")
            }
        }
        var facts = MicroscopeFacts()
        if case .group(let imageTags)? = frame.image["ImageTags"] {
            facts.indicatedMagnification = imageTags.value(at: "Microscope Info.Indicated Magnification")?.doubleValue
            facts.voltage = imageTags.value(at: "Microscope Info.Voltage")?.doubleValue
            facts.exposureSeconds = imageTags.value(at: "DataBar.Exposure Time (s)")?.doubleValue
                ?? imageTags.value(at: "Acquisition.Parameters.High Level.Exposure (s)")?.doubleValue
            facts.acquisitionDate = imageTags.value(at: "DataBar.Acquisition Date")?.stringValue
            facts.acquisitionTime = imageTags.value(at: "DataBar.Acquisition Time")?.stringValue
        }
        facts.pixelSizeNM = calibrations.last?.nanometresPerPixel
        facts.pixelUnit = calibrations.last?.unit
        let others = candidates.filter { $0.index != frame.index }.map {
            OtherImage(index: $0.index, shape: $0.shape,
                       pixelType: (try? DMParser.pixelType(dataType: $0.dataType, file: file, offset: 0).rawValue) ?? "DM type \($0.dataType)",
                       note: $0.dataType == 23 ? "thumbnail (RGB)" : "image")
        }
        return MicrographHeader(file: file, format: version == 3 ? .dm3 : .dm4, shape: frame.shape, pixelType: pixelType,
                                calibrations: calibrations, byteOrder: littleEndian ? .littleEndian : .bigEndian,
                                dataOffset: frame.data.offset, tags: root, microscope: facts, otherImages: others,
                                imageIndex: frame.index)
    }

    /// DM `ImageData.DataType` to a pixel type.
    static func pixelType(dataType: Int, file: String, offset: Int) throws -> PixelType {
        switch dataType {
        case 1: return .int16
        case 2: return .float32
        case 6: return .uint8
        case 7: return .int32
        case 9: return .int8
        case 10: return .uint16
        case 11: return .uint32
        case 12: return .float64
        case 14: return .bool
        case 39: return .int64
        case 40: return .uint64
        case 3, 5, 13:
            throw FormatError(file: file, offset: offset, "complex images (DM DataType \(dataType)) are not supported: hrtem reads real-valued frames only")
        case 8, 23:
            throw FormatError(file: file, offset: offset, "RGB images (DM DataType \(dataType)) are not supported as frames")
        default:
            throw FormatError(file: file, offset: offset, "unknown DM image DataType \(dataType)")
        }
    }

    /// DM `DataType` code and array element type for a pixel type (for the writer).
    static func codes(for pixelType: PixelType) -> (dataType: Int, elementType: Int) {
        switch pixelType {
        case .int16: return (1, 2)
        case .float32: return (2, 6)
        case .uint8: return (6, 10)
        case .int32: return (7, 3)
        case .int8: return (9, 9)
        case .uint16: return (10, 4)
        case .uint32: return (11, 5)
        case .float64: return (12, 7)
        case .bool: return (14, 8)
        case .int64: return (39, 11)
        case .uint64: return (40, 12)
        }
    }
}
