import Foundation

/// The element types a safetensors file may hold (the format's dtype strings).
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .F64, .I64, .U64: return 8
        case .F32, .I32, .U32: return 4
        case .F16, .BF16, .I16, .U16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }
}

/// One named tensor of a safetensors file: row-major (C order) little-endian bytes.
public struct SafetensorsTensor: Equatable, Sendable {
    public var name: String
    public var dtype: SafetensorsDType
    public var shape: [Int]
    /// Exactly `shape.product * dtype.size` little-endian bytes.
    public var bytes: [UInt8]

    public init(name: String, dtype: SafetensorsDType, shape: [Int], bytes: [UInt8]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// A float32 tensor.
    public init(name: String, shape: [Int], float32 values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (index, value) in values.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: index * 4, as: UInt32.self)
            }
        }
        self.init(name: name, dtype: .F32, shape: shape, bytes: bytes)
    }

    /// A scalar int64 tensor (shape `[]`), as PyTorch stores BatchNorm's `num_batches_tracked`.
    public init(name: String, int64 value: Int64) {
        var bytes = [UInt8](repeating: 0, count: 8)
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, as: Int64.self) }
        self.init(name: name, dtype: .I64, shape: [], bytes: bytes)
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// The values as float32 (F32 as is; F64, F16 and integer types converted), or nil for BF16/BOOL.
    public var float32Values: [Float]? {
        let count = elementCount
        return bytes.withUnsafeBytes { raw -> [Float]? in
            switch dtype {
            case .F32:
                return (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            case .F64:
                return (0..<count).map { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))) }
            case .I64:
                return (0..<count).map { Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) }
            case .I32:
                return (0..<count).map { Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
            case .U8:
                return raw.map { Float($0) }
            default:
                return nil
            }
        }
    }

    /// The first value as an integer (for scalar counters such as `num_batches_tracked`).
    public var int64Value: Int64? {
        guard elementCount >= 1 else { return nil }
        return bytes.withUnsafeBytes { raw -> Int64? in
            switch dtype {
            case .I64: return Int64(littleEndian: raw.loadUnaligned(as: Int64.self))
            case .I32: return Int64(Int32(littleEndian: raw.loadUnaligned(as: Int32.self)))
            default: return nil
            }
        }
    }
}

/// The contents of a safetensors file: tensors in file order plus the `__metadata__` strings.
public struct SafetensorsFile: Sendable {
    public var tensors: [SafetensorsTensor]
    public var metadata: [String: String]

    public init(tensors: [SafetensorsTensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    public subscript(name: String) -> SafetensorsTensor? { tensors.first { $0.name == name } }
}

/// Reads a safetensors file: 8-byte little-endian header length, a JSON header mapping each
/// tensor name to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the byte
/// buffer after the header), then the buffer.
/// - Throws: `FormatError` naming the file, the byte offset and what was wrong: a header that
///   runs past the end of the file or is not a JSON object, an unknown dtype, a negative shape,
///   offsets that disagree with dtype x shape, leave the buffer, or overlap another tensor.
public func readSafetensors(from url: URL) throws -> SafetensorsFile {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw FormatError(file: url.path, "cannot read: \(error.localizedDescription)")
    }
    return try parseSafetensors([UInt8](data), file: url.path)
}

/// Parses the bytes of a safetensors file; `file` names it in errors. See `readSafetensors`.
public func parseSafetensors(_ bytes: [UInt8], file: String) throws -> SafetensorsFile {
    guard bytes.count >= 8 else {
        throw FormatError(file: file, offset: 0, "file is \(bytes.count) bytes; a safetensors file starts with an 8-byte header length")
    }
    var headerLength: UInt64 = 0
    for index in 0..<8 { headerLength |= UInt64(bytes[index]) << (8 * UInt64(index)) }
    guard headerLength <= UInt64(bytes.count - 8) else {
        throw FormatError(file: file, offset: 0, "header length \(headerLength) runs past the end of the \(bytes.count)-byte file")
    }
    let bufferStart = 8 + Int(headerLength)
    let headerObject: Any
    do {
        headerObject = try JSONSerialization.jsonObject(with: Data(bytes[8..<bufferStart]))
    } catch {
        throw FormatError(file: file, offset: 8, "header is not valid JSON: \(error.localizedDescription)")
    }
    guard let header = headerObject as? [String: Any] else {
        throw FormatError(file: file, offset: 8, "header is not a JSON object")
    }
    let bufferLength = bytes.count - bufferStart
    var metadata: [String: String] = [:]
    var entries: [(name: String, dtype: SafetensorsDType, shape: [Int], begin: Int, end: Int)] = []
    for (name, value) in header {
        if name == "__metadata__" {
            guard let dictionary = value as? [String: Any] else {
                throw FormatError(file: file, offset: 8, "__metadata__ is not an object")
            }
            for (key, item) in dictionary {
                guard let text = item as? String else {
                    throw FormatError(file: file, offset: 8, "__metadata__.\(key) is not a string")
                }
                metadata[key] = text
            }
            continue
        }
        guard let entry = value as? [String: Any] else {
            throw FormatError(file: file, offset: 8, "tensor \(name): entry is not an object")
        }
        guard let dtypeName = entry["dtype"] as? String, let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw FormatError(file: file, offset: 8, "tensor \(name): unknown dtype \(String(describing: entry["dtype"] ?? "(missing)"))")
        }
        guard let shapeValues = entry["shape"] as? [Any] else {
            throw FormatError(file: file, offset: 8, "tensor \(name): shape missing or not a list")
        }
        var shape: [Int] = []
        for dimension in shapeValues {
            guard let number = dimension as? NSNumber, number.doubleValue == number.doubleValue.rounded(), number.intValue >= 0 else {
                throw FormatError(file: file, offset: 8, "tensor \(name): shape \(shapeValues) is not a list of non-negative integers")
            }
            shape.append(number.intValue)
        }
        guard let offsets = entry["data_offsets"] as? [NSNumber], offsets.count == 2 else {
            throw FormatError(file: file, offset: 8, "tensor \(name): data_offsets missing or not [begin, end]")
        }
        let begin = offsets[0].intValue, end = offsets[1].intValue
        let expected = shape.reduce(1, *) * dtype.size
        guard begin >= 0, end >= begin, end <= bufferLength else {
            throw FormatError(file: file, offset: bufferStart + max(0, begin),
                              "tensor \(name): data_offsets [\(begin), \(end)] outside the \(bufferLength)-byte buffer")
        }
        guard end - begin == expected else {
            throw FormatError(file: file, offset: bufferStart + begin,
                              "tensor \(name): data_offsets span \(end - begin) bytes but \(dtype.rawValue) \(shape) needs \(expected)")
        }
        entries.append((name, dtype, shape, begin, end))
    }
    entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
    var previousEnd = 0
    var previousName = ""
    for entry in entries {
        if entry.begin < previousEnd {
            throw FormatError(file: file, offset: bufferStart + entry.begin,
                              "tensor \(entry.name) overlaps tensor \(previousName)")
        }
        previousEnd = entry.end
        previousName = entry.name
    }
    let tensors = entries.map { entry in
        SafetensorsTensor(name: entry.name, dtype: entry.dtype, shape: entry.shape,
                          bytes: Array(bytes[(bufferStart + entry.begin)..<(bufferStart + entry.end)]))
    }
    return SafetensorsFile(tensors: tensors, metadata: metadata)
}

/// The bytes of a safetensors file holding `file`'s tensors in the given order. The header is
/// JSON with keys sorted, padded with spaces to a multiple of 8 bytes (as the reference
/// implementation does), so the same tensors always give the same bytes.
/// - Precondition: names are unique and each tensor's byte count matches dtype x shape.
public func safetensorsBytes(_ file: SafetensorsFile) -> [UInt8] {
    var headerEntries: [String] = []
    var offset = 0
    for tensor in file.tensors {
        precondition(tensor.bytes.count == tensor.elementCount * tensor.dtype.size,
                     "\(tensor.name): \(tensor.bytes.count) bytes for \(tensor.dtype.rawValue) \(tensor.shape)")
        let shape = tensor.shape.map(String.init).joined(separator: ",")
        headerEntries.append("\(jsonString(tensor.name)):{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + tensor.bytes.count)]}")
        offset += tensor.bytes.count
    }
    precondition(Set(file.tensors.map(\.name)).count == file.tensors.count, "duplicate tensor names")
    if !file.metadata.isEmpty {
        let items = file.metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(file.metadata[$0]!))" }
        headerEntries.insert("\"__metadata__\":{\(items.joined(separator: ","))}", at: 0)
    }
    var header = Array("{\(headerEntries.joined(separator: ","))}".utf8)
    while header.count % 8 != 0 { header.append(0x20) }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(8 + header.count + offset)
    let length = UInt64(header.count)
    for index in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: length >> (8 * UInt64(index)))) }
    bytes.append(contentsOf: header)
    for tensor in file.tensors { bytes.append(contentsOf: tensor.bytes) }
    return bytes
}

/// Writes `file` as safetensors, atomically (temporary name + fsync + rename).
/// - Throws: `FormatError` naming the target when the write fails.
public func writeSafetensors(_ file: SafetensorsFile, to url: URL) throws {
    try writeFileAtomically(Data(safetensorsBytes(file)), to: url)
}

private func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out + "\""
}
