import Foundation

/// Which DigitalMicrograph file version to write.
public enum DMVersion: Sendable {
    case dm3, dm4
}

/// A tag value hrtem writes into a DM file's `ImageTags`.
public enum DMTagInput: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral {
    case text(String)
    case number(Double)
    case integer(Int32)

    public init(stringLiteral value: String) { self = .text(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(integerLiteral value: Int32) { self = .integer(value) }
}

/// Writes a 2-D raster as a DM3 or DM4 file that DigitalMicrograph, ncempy and hrtem read.
///
/// The file holds an `ImageList` of two images, as Gatan software writes them: 1 is a small RGB
/// thumbnail, 2 is the frame (so tag paths read `ImageList.2...`). Both axes are calibrated
/// with `pixelSizeNM` in "nm" (uncalibrated, scale 1 and no unit, when nil). `tags` go under
/// `ImageList.2.ImageTags`, each key a dotted path (`"Microscope Info.Indicated Magnification"`).
/// Pixels are stored little-endian, bit-exactly. The file appears atomically.
/// - Throws: `FormatError` naming the file when it cannot be written.
public func writeDM<P: StoredPixel>(_ raster: Raster<P>, to url: URL, version: DMVersion = .dm4,
                                    pixelSizeNM: Double? = nil, name: String? = nil,
                                    tags: [String: DMTagInput] = [:]) throws {
    let calibration = AxisCalibration(scale: pixelSizeNM ?? 1, origin: 0, unit: pixelSizeNM == nil ? "" : "nm")
    try raster.pixels.withUnsafeBytes { bytes in
        try writeDM(shape: [raster.height, raster.width], pixelType: P.pixelType, littleEndianBytes: bytes,
                    calibrations: [calibration, calibration], to: url, version: version,
                    name: name ?? url.deletingPathExtension().lastPathComponent, tags: tags)
    }
}

/// Writes 1-D, 2-D or 3-D data (shape slowest-first, NumPy C order) as DM3 or DM4, with one
/// calibration per axis in the same order. See `writeDM(_:to:version:pixelSizeNM:name:tags:)`.
/// - Precondition: `littleEndianBytes.count` is the product of `shape` times the pixel size.
/// - Throws: `FormatError` naming the file when it cannot be written.
public func writeDM(shape: [Int], pixelType: PixelType, littleEndianBytes: UnsafeRawBufferPointer,
                    calibrations: [AxisCalibration], to url: URL, version: DMVersion = .dm4,
                    name: String, tags: [String: DMTagInput] = [:]) throws {
    precondition((1...4).contains(shape.count) && calibrations.count == shape.count, "DM writer: 1 to 4 axes, one calibration each")
    precondition(shape.reduce(1, *) * pixelType.byteCount == littleEndianBytes.count, "DM writer: shape and byte count disagree")
    let codes = DMParser.codes(for: pixelType)
    let dimensionsFastestFirst = Array(shape.reversed())
    let calibrationsFastestFirst = Array(calibrations.reversed())

    let thumbnail = makeThumbnail(shape: shape, pixelType: pixelType, bytes: littleEndianBytes)
    let thumbnailNode = imageNode(dimensions: [thumbnail.width, thumbnail.height], dataType: 23, pixelDepth: 4,
                                  calibrations: [AxisCalibration(), AxisCalibration()],
                                  data: .array(elementType: 5, count: thumbnail.width * thumbnail.height, payload: .owned(thumbnail.bytes)),
                                  name: "Thumbnail", imageTags: [])
    var imageTags = DMNode.group("ImageTags", [])
    for key in tags.keys.sorted() {
        imageTags.insert(path: key.split(separator: ".").map(String.init), value: tags[key]!)
    }
    let frameNode = imageNode(dimensions: dimensionsFastestFirst, dataType: codes.dataType, pixelDepth: pixelType.byteCount,
                              calibrations: calibrationsFastestFirst,
                              data: .array(elementType: codes.elementType, count: shape.reduce(1, *), payload: .pixels),
                              name: name, imageTags: imageTags.children)
    let root = DMNode.group("", [
        .group("ImageList", [thumbnailNode, frameNode]),
        .group("ImageSourceList", []),
    ])
    let fieldSize = version == .dm3 ? 4 : 8
    let rootSize = root.groupContentSize(fieldSize: fieldSize)
    var output = DMOutput(fieldSize: fieldSize, pixels: littleEndianBytes)
    output.bigEndian(UInt32(version == .dm3 ? 3 : 4))
    // Root length as Gatan writes it: everything after the header, including the 8-byte end mark.
    output.count(rootSize + 8)
    output.bigEndian(UInt32(1))  // little-endian values
    root.writeGroupContent(into: &output)
    output.append([UInt8](repeating: 0, count: 8))
    try writeFileAtomically(to: url) { handle in try output.flush(to: handle, final: true) }
}

private func imageNode(dimensions: [Int], dataType: Int, pixelDepth: Int, calibrations: [AxisCalibration],
                       data: DMNode.Payload, name: String, imageTags: [DMNode]) -> DMNode {
    let dimensionCalibrations = calibrations.map { calibration in
        DMNode.group("", [
            .data("Origin", .scalar(type: 6, bytes: le(Float(calibration.origin).bitPattern))),
            .data("Scale", .scalar(type: 6, bytes: le(Float(calibration.scale).bitPattern))),
            .data("Units", .text(calibration.unit)),
        ])
    }
    return .group("", [
        .group("ImageData", [
            .group("Calibrations", [
                .group("Brightness", [
                    .data("Origin", .scalar(type: 6, bytes: le(Float(0).bitPattern))),
                    .data("Scale", .scalar(type: 6, bytes: le(Float(1).bitPattern))),
                    .data("Units", .text("")),
                ]),
                .group("Dimension", dimensionCalibrations),
                .data("DisplayCalibratedUnits", .scalar(type: 8, bytes: [1])),
            ]),
            .data("Data", data),
            .data("DataType", .scalar(type: 3, bytes: le(Int32(dataType)))),
            .group("Dimensions", dimensions.map { .data("", .scalar(type: 5, bytes: le(UInt32($0)))) }),
            .data("PixelDepth", .scalar(type: 5, bytes: le(UInt32(pixelDepth)))),
        ]),
        .group("ImageTags", imageTags),
        .data("Name", .text(name)),
    ])
}

private func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// A gray RGBA thumbnail of at most 64 pixels a side (plane 0 of the data, min-max scaled).
private func makeThumbnail(shape: [Int], pixelType: PixelType, bytes: UnsafeRawBufferPointer) -> (width: Int, height: Int, bytes: [UInt8]) {
    let width = shape.last!, height = shape.count >= 2 ? shape[shape.count - 2] : 1
    let step = max(1, (max(width, height) + 63) / 64)
    let thumbWidth = (width + step - 1) / step, thumbHeight = (height + step - 1) / step
    var samples = [Float](repeating: 0, count: thumbWidth * thumbHeight)
    var one: Float = 0
    for r in 0..<thumbHeight {
        for c in 0..<thumbWidth {
            let index = (r * step) * width + c * step
            convertToFloat(bytes.baseAddress! + index * pixelType.byteCount, count: 1, from: pixelType, swapBytes: false, into: &one)
            samples[r * thumbWidth + c] = one.isFinite ? one : 0
        }
    }
    let low = samples.min() ?? 0, high = samples.max() ?? 1
    let range = high > low ? high - low : 1
    var out = [UInt8]()
    out.reserveCapacity(samples.count * 4)
    for value in samples {
        let gray = UInt8(max(0, min(255, ((value - low) / range * 255).rounded())))
        out += [gray, gray, gray, 255]
    }
    return (thumbWidth, thumbHeight, out)
}

/// The tag tree hrtem writes, with sizes computable before writing (DM4 records them).
private indirect enum DMNode {
    enum Payload {
        case scalar(type: Int, bytes: [UInt8])
        case text(String)
        case array(elementType: Int, count: Int, payload: ArrayBytes)
    }
    enum ArrayBytes {
        case owned([UInt8])
        /// The frame's pixels, passed to the output separately so they are never copied into the tree.
        case pixels
    }

    case group(String, [DMNode])
    case data(String, Payload)

    var children: [DMNode] {
        if case .group(_, let children) = self { return children }
        return []
    }

    mutating func insert(path: [String], value: DMTagInput) {
        guard case .group(let name, var children) = self, let first = path.first else { return }
        if path.count == 1 {
            let payload: Payload
            switch value {
            case .text(let text): payload = .text(text)
            case .number(let number): payload = .scalar(type: 7, bytes: le(number.bitPattern))
            case .integer(let integer): payload = .scalar(type: 3, bytes: le(integer))
            }
            children.removeAll { if case .data(first, _) = $0 { return true }; return false }
            children.append(.data(first, payload))
        } else {
            if let index = children.firstIndex(where: { if case .group(first, _) = $0 { return true }; return false }) {
                children[index].insert(path: Array(path.dropFirst()), value: value)
            } else {
                var child = DMNode.group(first, [])
                child.insert(path: Array(path.dropFirst()), value: value)
                children.append(child)
            }
        }
        self = .group(name, children)
    }

    var nameBytes: [UInt8] {
        let name: String
        switch self { case .group(let n, _), .data(let n, _): name = n }
        return name.unicodeScalars.map { $0.value < 256 ? UInt8($0.value) : UInt8(ascii: "?") }
    }

    func infoAndDataSize(fieldSize: Int) -> (info: [Int], dataSize: Int) {
        guard case .data(_, let payload) = self else { return ([], 0) }
        switch payload {
        case .scalar(let type, let bytes): return ([type], bytes.count)
        case .text(let text): return ([20, 4, text.utf16.count], 2 * text.utf16.count)
        case .array(let type, let count, _): return ([20, type, count], count * DMParser.elementSize(type)!)
        }
    }

    /// Bytes of a group after its entry header: sorted, open, count, children.
    func groupContentSize(fieldSize: Int) -> Int {
        2 + fieldSize + children.reduce(0) { $0 + $1.entrySize(fieldSize: fieldSize) }
    }

    /// Bytes after the (DM4) size field of an entry.
    func contentSize(fieldSize: Int) -> Int {
        switch self {
        case .group: return groupContentSize(fieldSize: fieldSize)
        case .data:
            let (info, dataSize) = infoAndDataSize(fieldSize: fieldSize)
            return 4 + fieldSize + info.count * fieldSize + dataSize
        }
    }

    func entrySize(fieldSize: Int) -> Int {
        1 + 2 + nameBytes.count + (fieldSize == 8 ? 8 : 0) + contentSize(fieldSize: fieldSize)
    }

    func writeGroupContent(into output: inout DMOutput) {
        output.append([0, 1])
        output.count(children.count)
        for child in children { child.writeEntry(into: &output) }
    }

    func writeEntry(into output: inout DMOutput) {
        switch self {
        case .group: output.append([20])
        case .data: output.append([21])
        }
        let name = nameBytes
        output.bigEndian(UInt16(name.count))
        output.append(name)
        if output.fieldSize == 8 { output.count(contentSize(fieldSize: 8)) }
        switch self {
        case .group: writeGroupContent(into: &output)
        case .data(_, let payload):
            output.append(Array("%%%%".utf8))
            let (info, _) = infoAndDataSize(fieldSize: output.fieldSize)
            output.count(info.count)
            for entry in info { output.count(entry) }
            switch payload {
            case .scalar(_, let bytes): output.append(bytes)
            case .text(let text): for unit in text.utf16 { output.append(le(unit)) }
            case .array(_, _, .owned(let bytes)): output.append(bytes)
            case .array(_, _, .pixels): output.appendPixels()
            }
        }
    }
}

/// Collects the small structure bytes and splices the pixel bytes in by reference.
private struct DMOutput {
    let fieldSize: Int
    let pixels: UnsafeRawBufferPointer
    var pieces: [[UInt8]] = [[]]
    var pixelPieceIndex: Int?

    init(fieldSize: Int, pixels: UnsafeRawBufferPointer) {
        self.fieldSize = fieldSize
        self.pixels = pixels
    }

    mutating func append(_ bytes: [UInt8]) { pieces[pieces.count - 1] += bytes }
    mutating func bigEndian<T: FixedWidthInteger>(_ value: T) { append(withUnsafeBytes(of: value.bigEndian) { Array($0) }) }
    mutating func count(_ value: Int) {
        if fieldSize == 4 { bigEndian(UInt32(value)) } else { bigEndian(UInt64(value)) }
    }
    mutating func appendPixels() {
        pixelPieceIndex = pieces.count
        pieces.append([])  // placeholder for the pixels
        pieces.append([])
    }

    func flush(to handle: FileHandle, final: Bool) throws {
        for (index, piece) in pieces.enumerated() {
            if index == pixelPieceIndex {
                // Large writes in chunks keep the kernel's copy bounded.
                var offset = 0
                while offset < pixels.count {
                    let n = min(64 << 20, pixels.count - offset)
                    try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: pixels.baseAddress! + offset), count: n, deallocator: .none))
                    offset += n
                }
            } else if !piece.isEmpty {
                try handle.write(contentsOf: piece)
            }
        }
    }
}
