import Foundation

/// A TIA series file (`.ser`, FEI/Thermo Fisher TEM Imaging & Analysis) holding 2-D images:
/// one image, or a series (a stack, planes in acquisition order).
///
/// Layout (little-endian): a 30-byte header (byte order 0x4949, series id 0x0197, version
/// 0x0210 with 32-bit offsets or 0x0220 with 64-bit ones, data type 0x4122 for images or 0x4120
/// for spectra, tag type, total and valid element counts, the offset of the offset arrays,
/// the number of dimensions), the dimension arrays (size, calibration offset, delta, element,
/// description, units), then at the offset arrays one data offset per element. Each image
/// element: x and y calibrations (offset, delta in metres, reference element), the element
/// type (1-6 unsigned/signed integers, 7-8 floats, 9-10 complex), its size, the pixels with the
/// first stored row at the bottom (so rows are reversed into top-first order, as TIA shows them).
///
/// The `.emi` file beside it (`name_1.ser` -> `name.emi`) is read for metadata when present:
/// its n-th `<ObjectInfo>` block (for `_n.ser`) gives voltage, magnification, exposure
/// (dwell time), camera, acquisition date and the mode; in diffraction mode the image axes are
/// reciprocal (1/nm). Without it, axes are lengths (nm), as TIA writes them.
struct SERFile: PlaneSource {
    let file: MappedFile
    let header: MicrographHeader
    /// Where each plane's pixels start.
    let planeOffsets: [Int]

    init(_ file: MappedFile) throws {
        self.file = file
        let bytes = file.bytes, name = file.name
        func fail(_ at: Int, _ message: String) -> FormatError { FormatError(file: name, offset: at, message) }
        func need(_ at: Int, _ count: Int, _ what: String) throws {
            guard at >= 0, count >= 0, at <= bytes.count - count else {
                throw fail(at, "\(what) needs \(count) bytes at byte \(at), the file has \(bytes.count)")
            }
        }
        func u16(_ at: Int) -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
        func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        func i32(_ at: Int) -> Int32 { Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: Int32.self)) }
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        func f64(_ at: Int) -> Double { Double(bitPattern: u64(at)) }

        try need(0, 30, "the SER header")
        guard u16(0) == 0x4949, u16(2) == 0x0197 else { throw fail(0, "not a TIA SER file (expected byte order 0x4949 and series id 0x0197)") }
        let version = u16(4)
        guard version == 0x0210 || version == 0x0220 else {
            throw fail(4, "unknown SER version 0x\(String(version, radix: 16)) (expected 0x0210 or 0x0220)")
        }
        let wide = version == 0x0220
        let dataType = u32(6), tagType = u32(10)
        if dataType == 0x4120 {
            throw fail(6, "holds 1-D spectra (data type 0x4120), not images: hrtem needs a 2-D image")
        }
        guard dataType == 0x4122 else { throw fail(6, "unknown SER data type 0x\(String(dataType, radix: 16)) (expected 0x4122 for images)") }
        let total = Int(u32(14)), valid = Int(u32(18))
        guard valid >= 1, valid <= total else {
            throw fail(18, "SER holds \(valid) valid element(s) of \(total): nothing to read")
        }
        try need(22, wide ? 12 : 8, "the offset array position")
        let arrayOffset = wide ? u64(22) : UInt64(u32(22))
        let dimensionCountAt = wide ? 30 : 26
        let dimensionCount = Int(u32(dimensionCountAt))
        guard dimensionCount <= 8 else { throw fail(dimensionCountAt, "SER claims \(dimensionCount) dimensions (at most 8 expected)") }
        var at = dimensionCountAt + 4
        var dimensions = [DMTag]()
        var seriesCalibration = AxisCalibration()
        for index in 0..<dimensionCount {
            let start = at
            try need(at, 28, "dimension \(index + 1)")
            let size = Int(u32(at)), offset = f64(at + 4), delta = f64(at + 12), element = Int(i32(at + 20))
            let descriptionLength = Int(u32(at + 24))
            try need(at + 28, descriptionLength, "dimension \(index + 1)'s description")
            let description = String(decoding: bytes[(at + 28)..<(at + 28 + descriptionLength)], as: UTF8.self)
            at += 28 + descriptionLength
            try need(at, 4, "dimension \(index + 1)'s units length")
            let unitsLength = Int(u32(at))
            try need(at + 4, unitsLength, "dimension \(index + 1)'s units")
            let units = String(decoding: bytes[(at + 4)..<(at + 4 + unitsLength)], as: UTF8.self)
            at += 4 + unitsLength
            if index == 0 { seriesCalibration = AxisCalibration(scale: delta, origin: Double(element) - (delta != 0 ? offset / delta : 0), unit: units) }
            dimensions.append(DMTag(name: "Dimension \(index + 1)", value: .group(DMTagGroup(tags: [
                DMTag(name: "Size", value: .integer(Int64(size)), offset: start),
                DMTag(name: "Calibration Offset", value: .real(offset), offset: start + 4),
                DMTag(name: "Calibration Delta", value: .real(delta), offset: start + 12),
                DMTag(name: "Calibration Element", value: .integer(Int64(element)), offset: start + 20),
                DMTag(name: "Description", value: .text(description), offset: start + 28),
                DMTag(name: "Units", value: .text(units), offset: start + 28 + descriptionLength),
            ])), offset: start))
        }
        let entrySize = wide ? 8 : 4
        guard arrayOffset <= UInt64(bytes.count), total <= (bytes.count - Int(arrayOffset)) / entrySize else {
            throw fail(wide ? 22 : 22, "SER offset array at byte \(arrayOffset) with \(total) entries runs past the end of the file (\(bytes.count) bytes)")
        }
        let elementOffsets = (0..<valid).map { i -> UInt64 in
            let at = Int(arrayOffset) + i * entrySize
            return wide ? u64(at) : UInt64(u32(at))
        }
        // Every element must be an image of the same type and size as the first.
        var width = 0, height = 0, elementType: Int16 = 0
        var offsets = [Int]()
        offsets.reserveCapacity(valid)
        var xCalibration = (offset: 0.0, delta: 1.0, element: 0), yCalibration = (offset: 0.0, delta: 1.0, element: 0)
        for (i, raw) in elementOffsets.enumerated() {
            let entryAt = Int(arrayOffset) + i * entrySize
            guard raw <= UInt64(bytes.count) else { throw fail(entryAt, "element \(i) starts at byte \(raw), past the end of the file") }
            let start = Int(raw)
            try need(start, 50, "image element \(i)'s header")
            let type = Int16(bitPattern: u16(start + 40))
            let sx = Int(i32(start + 42)), sy = Int(i32(start + 46))
            if i == 0 {
                elementType = type
                width = sx
                height = sy
                xCalibration = (f64(start), f64(start + 8), Int(i32(start + 16)))
                yCalibration = (f64(start + 20), f64(start + 28), Int(i32(start + 36)))
                guard width >= 1, height >= 1, width <= Int(Int32.max) / max(height, 1) else {
                    throw fail(start + 42, "image element \(i) is \(sx) x \(sy) pixels")
                }
            } else if type != elementType || sx != width || sy != height {
                throw fail(start + 40, "image element \(i) is \(sx) x \(sy) of type \(type), the first is \(width) x \(height) of type \(elementType)")
            }
            offsets.append(start + 50)
        }
        let pixelType: PixelType
        switch elementType {
        case 1: pixelType = .uint8
        case 2: pixelType = .uint16
        case 3: pixelType = .uint32
        case 4: pixelType = .int8
        case 5: pixelType = .int16
        case 6: pixelType = .int32
        case 7: pixelType = .float32
        case 8: pixelType = .float64
        case 9, 10:
            throw fail(Int(elementOffsets[0]) + 40, "complex images (SER type \(elementType)) are not supported: hrtem reads real-valued frames only")
        default:
            throw fail(Int(elementOffsets[0]) + 40, "unknown SER element type \(elementType) (expected 1 to 8)")
        }
        let planeBytes = width * height * pixelType.byteCount
        for (i, start) in offsets.enumerated() where start > bytes.count - planeBytes {
            throw fail(start, "image element \(i) needs \(planeBytes) bytes of pixels at byte \(start), the file has \(bytes.count)")
        }
        planeOffsets = offsets

        var tags = [DMTag(name: "SER", value: .group(DMTagGroup(tags: [
            DMTag(name: "Version", value: .unsigned(UInt64(version)), offset: 4),
            DMTag(name: "Data Type", value: .unsigned(UInt64(dataType)), offset: 6),
            DMTag(name: "Tag Type", value: .unsigned(UInt64(tagType)), offset: 10),
            DMTag(name: "Total Elements", value: .integer(Int64(total)), offset: 14),
            DMTag(name: "Valid Elements", value: .integer(Int64(valid)), offset: 18),
            DMTag(name: "Dimensions", value: .group(DMTagGroup(tags: dimensions)), offset: dimensionCountAt),
            DMTag(name: "Calibration X", value: .structure([.real(xCalibration.offset), .real(xCalibration.delta), .integer(Int64(xCalibration.element))]), offset: Int(elementOffsets[0])),
            DMTag(name: "Calibration Y", value: .structure([.real(yCalibration.offset), .real(yCalibration.delta), .integer(Int64(yCalibration.element))]), offset: Int(elementOffsets[0]) + 20),
        ])), offset: 0)]
        var facts = MicroscopeFacts()
        var reciprocal = false
        if let emi = EMIMetadata.beside(file) {
            tags.append(DMTag(name: "EMI", value: .group(emi.tags), offset: 0))
            facts = emi.facts
            reciprocal = emi.isDiffraction
        }
        // Calibrations are in metres (reciprocal metres in diffraction); hrtem gives nm (1/nm).
        func axis(_ c: (offset: Double, delta: Double, element: Int)) -> AxisCalibration {
            let scale = reciprocal ? c.delta / 1e9 : c.delta * 1e9
            let physicalOrigin = reciprocal ? c.offset / 1e9 : c.offset * 1e9
            return AxisCalibration(scale: scale, origin: Double(c.element) - (scale != 0 ? physicalOrigin / scale : 0),
                                   unit: reciprocal ? "1/nm" : "nm")
        }
        let x = axis(xCalibration), y = axis(yCalibration)
        if !reciprocal, x.scale > 0 { facts.pixelSizeNM = x.scale }
        facts.pixelUnit = x.unit
        header = MicrographHeader(file: name, format: .ser, shape: valid == 1 ? [height, width] : [valid, height, width],
                                  pixelType: pixelType, calibrations: valid == 1 ? [y, x] : [seriesCalibration, y, x],
                                  byteOrder: .littleEndian, dataOffset: nil, tags: DMTagGroup(tags: tags), microscope: facts,
                                  otherImages: [], imageIndex: 1)
    }

    func readPlane(_ index: Int, into destination: UnsafeMutableRawPointer) throws {
        let rowBytes = header.width * header.pixelType.byteCount
        let start = planeOffsets[index]
        let height = header.height
        guard start >= 0, start <= file.count - rowBytes * height else {
            throw FormatError(file: file.name, offset: start, "image element \(index) runs past the end of the file")
        }
        // TIA stores the bottom row first.
        let source = file.bytes.baseAddress! + start
        for row in 0..<height {
            (destination + row * rowBytes).copyMemory(from: source + (height - 1 - row) * rowBytes, byteCount: rowBytes)
        }
    }
}

/// Metadata from a TIA `.emi` file: its `<ObjectInfo>` blocks are XML-like text (elements with
/// text or children; `ExperimentalDescription` lists Label/Value/Unit records).
struct EMIMetadata {
    var tags: DMTagGroup
    var facts: MicroscopeFacts
    var isDiffraction: Bool

    /// The `.emi` beside a SER file `name_N.ser` (its N-th ObjectInfo), or nil when there is
    /// none, it cannot be read or it holds no ObjectInfo for this file.
    static func beside(_ ser: MappedFile) -> EMIMetadata? {
        guard ser.descriptor >= 0 else { return nil }
        let stem = ser.url.deletingPathExtension().lastPathComponent
        guard let underscore = stem.lastIndex(of: "_"), let number = Int(stem[stem.index(after: underscore)...]), number >= 1 else { return nil }
        let emi = ser.url.deletingLastPathComponent().appendingPathComponent(String(stem[..<underscore]) + ".emi")
        guard let data = try? Data(contentsOf: emi, options: .alwaysMapped) else { return nil }
        let blocks = objectInfoBlocks(data)
        guard number <= blocks.count else { return nil }
        return EMIMetadata(xml: blocks[number - 1].text, at: blocks[number - 1].offset)
    }

    /// The `<ObjectInfo>...</ObjectInfo>` blocks of an EMI file, with where each starts.
    static func objectInfoBlocks(_ data: Data) -> [(text: String, offset: Int)] {
        let open = Array("<ObjectInfo>".utf8), close = Array("</ObjectInfo>".utf8)
        var blocks = [(String, Int)]()
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            var at = 0
            func find(_ needle: [UInt8], from: Int) -> Int? {
                guard needle.count <= bytes.count else { return nil }
                var i = from
                while i <= bytes.count - needle.count {
                    if bytes[i] == needle[0], bytes[i..<(i + needle.count)].elementsEqual(needle) { return i }
                    i += 1
                }
                return nil
            }
            while let start = find(open, from: at), let end = find(close, from: start) {
                blocks.append((String(decoding: bytes[start..<(end + close.count)], as: UTF8.self), start))
                at = end + close.count
            }
        }
        return blocks
    }

    init(xml: String, at offset: Int) {
        var parser = XMLLikeParser(text: xml)
        let root = parser.parse()
        var tags = [DMTag]()
        var facts = MicroscopeFacts()
        var diffraction = false
        func convert(_ node: XMLLikeParser.Node) -> DMTag {
            if node.name == "ExperimentalDescription", let records = node.children.first(where: { $0.name == "Root" })?.children {
                var entries = [DMTag]()
                for record in records where record.name == "Data" {
                    let label = record.child("Label")?.text ?? "", value = record.child("Value")?.text ?? "", unit = record.child("Unit")?.text ?? ""
                    entries.append(DMTag(name: label, value: .text(unit.isEmpty ? value : "\(value) \(unit)"), offset: offset))
                }
                return DMTag(name: node.name, value: .group(DMTagGroup(tags: entries)), offset: offset)
            }
            if node.children.isEmpty { return DMTag(name: node.name, value: .text(node.text), offset: offset) }
            return DMTag(name: node.name, value: .group(DMTagGroup(tags: node.children.map(convert))), offset: offset)
        }
        for child in root.children.first(where: { $0.name == "ObjectInfo" })?.children ?? [] where child.name != "TrueImageHeaderInfo" {
            tags.append(convert(child))
        }
        let group = DMTagGroup(tags: tags)
        func number(_ path: String) -> Double? {
            guard let text = group.value(at: path)?.stringValue else { return nil }
            return Double(text.split(separator: " ").first ?? "")
        }
        facts.voltage = number("ExperimentalConditions.MicroscopeConditions.AcceleratingVoltage")
        facts.indicatedMagnification = number("AcquireInfo.Magnification") ?? number("ExperimentalDescription.Magnification")
        facts.exposureSeconds = number("AcquireInfo.DwellTimePath")
        facts.detector = group.value(at: "AcquireInfo.CameraNamePath")?.stringValue
        if let mode = group.value(at: "ExperimentalDescription.Mode")?.stringValue {
            diffraction = mode.contains("Diffraction")
        }
        if let date = group.value(at: "AcquireDate")?.stringValue {
            // "Mon Feb 22 18:50:01 2016"
            let parts = date.split(separator: " ")
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            if parts.count == 5, let month = months.firstIndex(of: String(parts[1])), let day = Int(parts[2]), let year = Int(parts[4]) {
                facts.acquisitionDate = String(format: "%04d-%02d-%02d", year, month + 1, day)
                facts.acquisitionTime = String(parts[3])
            } else {
                facts.acquisitionDate = date
            }
        }
        self.tags = group
        self.facts = facts
        self.isDiffraction = diffraction
    }
}

/// A tolerant reader of the simple XML TIA writes: nested elements holding text or children,
/// no attributes that matter, the five predefined entities. Malformed input ends the tree early
/// rather than failing (it is metadata beside the pixels).
struct XMLLikeParser {
    struct Node {
        var name: String
        var text = ""
        var children: [Node] = []
        func child(_ name: String) -> Node? { children.first { $0.name == name } }
    }

    let scalars: [Unicode.Scalar]
    var position = 0

    init(text: String) { scalars = Array(text.unicodeScalars) }

    mutating func parse() -> Node {
        var root = Node(name: "")
        parseChildren(into: &root, depth: 0)
        return root
    }

    private mutating func parseChildren(into node: inout Node, depth: Int) {
        guard depth < 64 else { return }
        var text = ""
        while position < scalars.count {
            if scalars[position] == "<" {
                if position + 1 < scalars.count, scalars[position + 1] == "/" {
                    // The closing tag of `node`.
                    while position < scalars.count, scalars[position] != ">" { position += 1 }
                    position += 1
                    break
                }
                position += 1
                var name = ""
                while position < scalars.count, scalars[position] != ">", scalars[position] != " ", scalars[position] != "/" {
                    name.unicodeScalars.append(scalars[position]); position += 1
                }
                var selfClosing = false
                while position < scalars.count, scalars[position] != ">" {
                    if scalars[position] == "/" { selfClosing = true }
                    position += 1
                }
                position += 1
                var child = Node(name: name)
                if !selfClosing, !name.hasPrefix("?"), !name.hasPrefix("!") { parseChildren(into: &child, depth: depth + 1) }
                node.children.append(child)
            } else {
                text.unicodeScalars.append(scalars[position])
                position += 1
            }
        }
        if node.children.isEmpty { node.text = XMLLikeParser.decodeEntities(text.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// Writes planes as a TIA SER file (version 0x0210, one image, or a series of `planes.count`
/// images with time tags), pixels bit-exact, bottom row first as TIA stores them. Calibration
/// `pixelSizeNM` (stored in metres) on both axes. When `emiMetadata` is given, an `.emi` file
/// (`<stem without _N>.emi`) is written beside it holding one ObjectInfo block with those
/// entries (`AcceleratingVoltage` in volts, `Magnification`, `DwellTimePath` seconds,
/// `CameraNamePath`, `AcquireDate`; others go into ExperimentalDescription). Files appear
/// atomically.
/// - Throws: `FormatError` naming the file for an element type SER cannot hold (64-bit
///   integers, bool), planes of different sizes, or a failed write.
public func writeSER<P: StoredPixel>(_ planes: [Raster<P>], to url: URL, pixelSizeNM: Double? = nil,
                                     emiMetadata: [String: String]? = nil) throws {
    guard let first = planes.first else { throw FormatError(file: url.path, "a SER file needs at least one image") }
    guard planes.allSatisfy({ $0.width == first.width && $0.height == first.height }) else {
        throw FormatError(file: url.path, "SER images must all be \(first.width) x \(first.height)")
    }
    let type: Int16
    switch P.pixelType {
    case .uint8: type = 1
    case .uint16: type = 2
    case .uint32: type = 3
    case .int8: type = 4
    case .int16: type = 5
    case .int32: type = 6
    case .float32: type = 7
    case .float64: type = 8
    default: throw FormatError(file: url.path, "SER cannot store \(P.pixelType) pixels")
    }
    var out = [UInt8]()
    func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    func i32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    func f64(_ v: Double) { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
    let n = planes.count
    u16(0x4949); u16(0x0197); u16(0x0210); u32(0x4122); u32(0x4152); u32(UInt32(n)); u32(UInt32(n))
    let offsetArrayAt = out.count
    u32(0)              // offset array position, patched below
    u32(1)              // one dimension: the series
    u32(UInt32(n)); f64(0); f64(1); i32(0)
    let description = Array("Number".utf8)
    u32(UInt32(description.count)); out += description
    u32(0)
    let metres = (pixelSizeNM ?? 1) * 1e-9
    var dataOffsets = [UInt32](), tagOffsets = [UInt32]()
    let rowBytes = first.width * P.pixelType.byteCount
    for plane in planes {
        dataOffsets.append(UInt32(out.count))
        f64(0); f64(metres); i32(0); f64(0); f64(metres); i32(0)
        u16(UInt16(bitPattern: type)); i32(Int32(first.width)); i32(Int32(first.height))
        let bytes = plane.littleEndianBytes
        for row in (0..<first.height).reversed() { out += bytes[(row * rowBytes)..<((row + 1) * rowBytes)] }
    }
    for index in 0..<n {
        tagOffsets.append(UInt32(out.count))
        u16(0x4152); u16(0); u32(UInt32(index))
    }
    let arrayAt = UInt32(out.count)
    for offset in dataOffsets { u32(offset) }
    for offset in tagOffsets { u32(offset) }
    withUnsafeBytes(of: arrayAt.littleEndian) { for i in 0..<4 { out[offsetArrayAt + i] = $0[i] } }
    try writeFileAtomically(Data(out), to: url)

    guard let metadata = emiMetadata else { return }
    let stem = url.deletingPathExtension().lastPathComponent
    let base = stem.range(of: "_", options: .backwards).map { String(stem[..<$0.lowerBound]) } ?? stem
    func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
    var xml = "<ObjectInfo><Uuid>\(UUID(uuidString: "00000000-0000-0000-0000-000000000000")!.uuidString.lowercased())</Uuid>"
    xml += "<ExperimentalConditions><MicroscopeConditions><AcceleratingVoltage>\(escape(metadata["AcceleratingVoltage"] ?? ""))</AcceleratingVoltage></MicroscopeConditions></ExperimentalConditions>"
    xml += "<ExperimentalDescription><Root>"
    let special: Set<String> = ["AcceleratingVoltage", "Magnification", "DwellTimePath", "CameraNamePath", "AcquireDate"]
    for key in metadata.keys.sorted() where !special.contains(key) {
        xml += "<Data><Label>\(escape(key))</Label><Value>\(escape(metadata[key]!))</Value><Unit></Unit></Data>"
    }
    xml += "</Root></ExperimentalDescription>"
    if let date = metadata["AcquireDate"] { xml += "<AcquireDate>\(escape(date))</AcquireDate>" }
    xml += "<AcquireInfo>"
    if let v = metadata["Magnification"] { xml += "<Magnification>\(escape(v))</Magnification>" }
    if let v = metadata["DwellTimePath"] { xml += "<DwellTimePath>\(escape(v))</DwellTimePath>" }
    if let v = metadata["CameraNamePath"] { xml += "<CameraNamePath>\(escape(v))</CameraNamePath>" }
    xml += "</AcquireInfo></ObjectInfo>"
    // TIA's binary preamble is opaque to readers, which look for the XML blocks only.
    var emi = Array("hrtem EMI\n".utf8)
    emi += Array(xml.utf8)
    try writeFileAtomically(Data(emi), to: url.deletingLastPathComponent().appendingPathComponent(base + ".emi"))
}
