import Foundation
import Micrograph
import ZIPFoundation

/// Writes a `state_dict` as PyTorch's zip checkpoint (what `torch.save(model.state_dict())`
/// writes: protocol-2 pickle of an OrderedDict of `_rebuild_tensor_v2` tensors, one stored
/// entry per storage), so hrtem's weights load in PyTorch and tests can make checkpoints
/// without it. Entries carry a fixed date: the same tensors always give the same bytes.
public enum TorchCheckpointWriter {
    /// The bytes of a checkpoint holding `tensors` under `root/` (the archive's folder name).
    /// - Throws: `FormatError` for a tensor whose dtype PyTorch storages cannot hold, or when
    ///   the zip cannot be assembled.
    public static func bytes(_ tensors: [SafetensorsTensor], root: String = "archive") throws -> Data {
        var pickle = PickleWriter()
        pickle.op(0x80); pickle.byte(2) // PROTO 2
        pickle.global("collections", "OrderedDict")
        pickle.op(0x29) // EMPTY_TUPLE
        pickle.op(0x52) // REDUCE
        pickle.op(0x28) // MARK
        for (index, tensor) in tensors.enumerated() {
            guard let storageName = storageName(tensor.dtype) else {
                throw FormatError(file: tensor.name, "dtype \(tensor.dtype.rawValue) has no PyTorch storage type")
            }
            pickle.unicode(tensor.name)
            pickle.global("torch._utils", "_rebuild_tensor_v2")
            pickle.op(0x28) // MARK: the argument tuple
            pickle.op(0x28) // MARK: the persistent id
            pickle.unicode("storage")
            pickle.global("torch", storageName)
            pickle.unicode(String(index))
            pickle.unicode("cpu")
            pickle.int(tensor.elementCount)
            pickle.op(0x74) // TUPLE
            pickle.op(0x51) // BINPERSID
            pickle.int(0)
            pickle.tuple(tensor.shape)
            var strides = [Int](repeating: 1, count: tensor.shape.count)
            for axis in stride(from: tensor.shape.count - 2, through: 0, by: -1) {
                strides[axis] = strides[axis + 1] * tensor.shape[axis + 1]
            }
            pickle.tuple(strides)
            pickle.op(0x89) // NEWFALSE: requires_grad
            pickle.global("collections", "OrderedDict")
            pickle.op(0x29); pickle.op(0x52) // OrderedDict(): backward hooks
            pickle.op(0x74) // TUPLE
            pickle.op(0x52) // REDUCE
        }
        pickle.op(0x75) // SETITEMS
        pickle.op(0x2E) // STOP

        return try container(pickle: pickle.bytes, storages: tensors.enumerated().map { (String($0.offset), $0.element.bytes) },
                             root: root)
    }

    /// A zip container in `torch.save`'s layout around any pickle and storages (`data/<key>`):
    /// the form every checkpoint shares, for writers and for tests that hand-make pickles.
    public static func container(pickle: [UInt8], storages: [(key: String, bytes: [UInt8])],
                                 root: String = "archive") throws -> Data {
        let archive: Archive
        do { archive = try Archive(data: Data(), accessMode: .create) } catch {
            throw FormatError(file: root, "cannot create a zip in memory: \(error)")
        }
        let fixedDate = Date(timeIntervalSince1970: 315_532_800) // 1980-01-01, the zip epoch
        func add(_ name: String, _ content: Data) throws {
            do {
                try archive.addEntry(with: "\(root)/\(name)", type: .file, uncompressedSize: Int64(content.count),
                                     modificationDate: fixedDate, compressionMethod: .none) { position, size in
                    content.subdata(in: Int(position)..<(Int(position) + size))
                }
            } catch {
                throw FormatError(file: root, "cannot add \(name) to the zip: \(error)")
            }
        }
        try add("data.pkl", Data(pickle))
        try add("byteorder", Data("little".utf8))
        for storage in storages { try add("data/\(storage.key)", Data(storage.bytes)) }
        try add("version", Data("3\n".utf8))
        guard let data = archive.data else { throw FormatError(file: root, "the in-memory zip has no data") }
        return data
    }

    /// Writes a checkpoint file atomically. See `bytes(_:root:)`.
    public static func write(_ tensors: [SafetensorsTensor], to url: URL) throws {
        try writeFileAtomically(try bytes(tensors), to: url)
    }

    static func storageName(_ dtype: SafetensorsDType) -> String? {
        switch dtype {
        case .F32: return "FloatStorage"
        case .F64: return "DoubleStorage"
        case .F16: return "HalfStorage"
        case .BF16: return "BFloat16Storage"
        case .I64: return "LongStorage"
        case .I32: return "IntStorage"
        case .I16: return "ShortStorage"
        case .I8: return "CharStorage"
        case .U8: return "ByteStorage"
        case .BOOL: return "BoolStorage"
        case .U16, .U32, .U64: return nil
        }
    }
}

/// Pickle opcodes, appended to a byte buffer (protocol 2 forms only).
public struct PickleWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func op(_ code: UInt8) { bytes.append(code) }
    public mutating func byte(_ value: UInt8) { bytes.append(value) }

    /// GLOBAL `module\nname\n`.
    public mutating func global(_ module: String, _ name: String) {
        bytes.append(0x63)
        bytes.append(contentsOf: Array("\(module)\n\(name)\n".utf8))
    }

    /// BINUNICODE.
    public mutating func unicode(_ text: String) {
        let utf8 = Array(text.utf8)
        bytes.append(0x58)
        appendLittleEndian(UInt32(utf8.count), 4)
        bytes.append(contentsOf: utf8)
    }

    /// BININT1 / BININT2 / BININT, whichever fits.
    public mutating func int(_ value: Int) {
        if value >= 0 && value < 256 {
            bytes.append(0x4B); bytes.append(UInt8(value))
        } else if value >= 0 && value < 65536 {
            bytes.append(0x4D); appendLittleEndian(UInt32(value), 2)
        } else {
            bytes.append(0x4A); appendLittleEndian(UInt32(bitPattern: Int32(truncatingIfNeeded: value)), 4)
        }
    }

    /// A tuple of integers (MARK ... TUPLE).
    public mutating func tuple(_ values: [Int]) {
        bytes.append(0x28)
        for value in values { int(value) }
        bytes.append(0x74)
    }

    private mutating func appendLittleEndian(_ value: UInt32, _ count: Int) {
        for index in 0..<count { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(index)))) }
    }
}
