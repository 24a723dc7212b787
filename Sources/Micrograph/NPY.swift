import Foundation

/// An N-dimensional array as NumPy's `.npy` format (version 1.0) stores it: little-endian,
/// C order (last axis fastest). Only the element types hrtem writes are supported.
public struct NPYArray: Equatable, Sendable {
    public var shape: [Int]
    public var pixelType: PixelType
    /// The raw little-endian element bytes in C order.
    public var bytes: [UInt8]

    public init(shape: [Int], pixelType: PixelType, bytes: [UInt8]) {
        precondition(shape.reduce(1, *) * pixelType.byteCount == bytes.count, "NPY shape and byte count disagree")
        self.shape = shape
        self.pixelType = pixelType
        self.bytes = bytes
    }

    public init(shape: [Int], float32 values: [Float]) {
        self.init(shape: shape, pixelType: .float32, bytes: values.withUnsafeBytes { Array($0) })
    }

    public init(shape: [Int], uint8 values: [UInt8]) {
        self.init(shape: shape, pixelType: .uint8, bytes: values)
    }

    public var float32Values: [Float]? {
        guard pixelType == .float32 else { return nil }
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    public var elementCount: Int { shape.reduce(1, *) }
}

/// The `.npy` header text for an array; the file is this header followed by the raw bytes.
/// The header is padded so that data starts at a multiple of 64 bytes, as NumPy does.
public func npyHeader(shape: [Int], pixelType: PixelType) -> [UInt8] {
    let descr: String
    switch pixelType {
    case .int8: descr = "|i1"
    case .uint8: descr = "|u1"
    case .bool: descr = "|b1"
    case .int16: descr = "<i2"
    case .uint16: descr = "<u2"
    case .int32: descr = "<i4"
    case .uint32: descr = "<u4"
    case .int64: descr = "<i8"
    case .uint64: descr = "<u8"
    case .float32: descr = "<f4"
    case .float64: descr = "<f8"
    }
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var dictionary = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
    let preamble = 10
    let total = preamble + dictionary.utf8.count + 1
    dictionary += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
    var header: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
    let length = UInt16(dictionary.utf8.count)
    header += [UInt8(length & 0xFF), UInt8(length >> 8)]
    header += Array(dictionary.utf8)
    return header
}

/// Writes an array atomically (temporary name, then rename).
public func writeNPY(_ array: NPYArray, to url: URL) throws {
    var data = Data(npyHeader(shape: array.shape, pixelType: array.pixelType))
    data.append(contentsOf: array.bytes)
    try writeFileAtomically(data, to: url)
}

/// Reads a `.npy` file written by hrtem or NumPy (version 1.0 to 3.0, C order, little-endian).
/// - Throws: `FormatError` with the byte offset of the first thing that is wrong.
public func readNPY(from url: URL) throws -> NPYArray {
    let data: Data
    do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
        throw FormatError(file: url.path, "cannot read: \(error.localizedDescription)")
    }
    return try parseNPY([UInt8](data), file: url.path)
}

public func parseNPY(_ bytes: [UInt8], file: String) throws -> NPYArray {
    guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
        throw FormatError(file: file, offset: 0, "not an NPY file (magic \\x93NUMPY missing)")
    }
    let major = bytes[6]
    let headerLength: Int
    let headerStart: Int
    if major == 1 {
        headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        headerStart = 10
    } else if major == 2 || major == 3 {
        guard bytes.count >= 12 else { throw FormatError(file: file, offset: 8, "truncated header length") }
        headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        headerStart = 12
    } else {
        throw FormatError(file: file, offset: 6, "unsupported NPY version \(major)")
    }
    guard headerStart + headerLength <= bytes.count else {
        throw FormatError(file: file, offset: headerStart, "header of \(headerLength) bytes runs past the end of the file")
    }
    let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
    func value(of key: String) throws -> String {
        guard let keyRange = header.range(of: "'\(key)':") else {
            throw FormatError(file: file, offset: headerStart, "header has no '\(key)'")
        }
        return String(header[keyRange.upperBound...]).trimmingCharacters(in: .whitespaces)
    }
    let descrText = try value(of: "descr")
    guard let firstQuote = descrText.firstIndex(where: { $0 == "'" || $0 == "\"" }) else {
        throw FormatError(file: file, offset: headerStart, "unreadable descr")
    }
    let afterQuote = descrText.index(after: firstQuote)
    guard let endQuote = descrText[afterQuote...].firstIndex(where: { $0 == "'" || $0 == "\"" }) else {
        throw FormatError(file: file, offset: headerStart, "unreadable descr")
    }
    let descr = String(descrText[afterQuote..<endQuote])
    let types: [String: PixelType] = ["|i1": .int8, "|u1": .uint8, "|b1": .bool, "<i2": .int16, "<u2": .uint16,
                                      "<i4": .int32, "<u4": .uint32, "<i8": .int64, "<u8": .uint64,
                                      "<f4": .float32, "<f8": .float64]
    guard let pixelType = types[descr] else {
        throw FormatError(file: file, offset: headerStart, "unsupported dtype '\(descr)' (little-endian numeric only)")
    }
    if try value(of: "fortran_order").hasPrefix("True") {
        throw FormatError(file: file, offset: headerStart, "Fortran-order arrays are not supported")
    }
    let shapeText = try value(of: "shape")
    guard let open = shapeText.firstIndex(of: "("), let close = shapeText.firstIndex(of: ")") else {
        throw FormatError(file: file, offset: headerStart, "unreadable shape")
    }
    var shape = [Int]()
    for part in shapeText[shapeText.index(after: open)..<close].split(separator: ",") {
        let trimmed = part.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { continue }
        guard let dimension = Int(trimmed), dimension >= 0 else {
            throw FormatError(file: file, offset: headerStart, "bad shape entry '\(trimmed)'")
        }
        shape.append(dimension)
    }
    let dataStart = headerStart + headerLength
    let (count, overflow) = shape.reduce((1, false)) { acc, d in
        let (m, o) = acc.0.multipliedReportingOverflow(by: d); return (m, acc.1 || o)
    }
    guard !overflow, count <= (bytes.count - dataStart) / pixelType.byteCount,
          count * pixelType.byteCount == bytes.count - dataStart else {
        throw FormatError(file: file, offset: dataStart,
                          "shape \(shape) needs \(count) elements of \(pixelType.byteCount) bytes, file holds \(bytes.count - dataStart) bytes")
    }
    return NPYArray(shape: shape, pixelType: pixelType, bytes: Array(bytes[dataStart...]))
}
