import Foundation
import Micrograph
import ZIPFoundation

/// One module of a whole-module checkpoint: where it hangs (`downs.0.conv1`; "" for the root)
/// and its class (`torch.nn.modules.conv.Conv2d`, `__main__.UNet`).
public struct TorchModule: Equatable, Sendable {
    public var path: String
    public var className: String

    public init(path: String, className: String) {
        self.path = path
        self.className = className
    }
}

/// The tensors of a PyTorch checkpoint file, read natively and without running any code.
///
/// A checkpoint is the zip container `torch.save` writes (`<root>/data.pkl`, the pickle;
/// `<root>/data/<key>`, one stored entry per storage; `<root>/byteorder`; `<root>/version`).
/// Its pickle is either a whole module (`torch.save(model)`: the module objects' `_parameters`,
/// `_buffers` and `_modules` are walked into state_dict names), a `state_dict` (an OrderedDict of
/// name -> tensor), or a dict holding one under `state_dict` / `model_state_dict` / `model`.
public struct TorchCheckpoint: Sendable {
    public enum Kind: Equatable, Sendable {
        /// `torch.save(model)`: the root module's class.
        case module(className: String)
        case stateDict
    }

    public var kind: Kind
    /// The state_dict, in PyTorch's order: a module's parameters, then its persistent buffers,
    /// then its children's, depth first.
    public var tensors: [SafetensorsTensor]
    /// Every module of a whole-module checkpoint, root first; empty for a state_dict.
    public var modules: [TorchModule]
    /// The archive's `version` record, when present.
    public var formatVersion: String?
    /// Elements in the modules' `_parameters` (trainable weights, no running statistics); nil
    /// for a state_dict, which does not say which tensors are parameters.
    public var parameterCount: Int?

    /// The largest archive entry accepted (a storage or the pickle).
    static let maximumEntryBytes: UInt64 = 1 << 32

    /// Reads a checkpoint file.
    /// - Throws: `FormatError` naming the file (and the archive entry, with the pickle offset,
    ///   for pickle problems): not a zip, no `data.pkl`, a refused global or opcode, a storage whose
    ///   size disagrees with its declared element count, a tensor view outside its storage.
    public static func read(from url: URL) throws -> TorchCheckpoint {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw FormatError(file: url.path, "cannot read: \(error.localizedDescription)")
        }
        return try parse(data, file: url.path)
    }

    /// Parses the bytes of a checkpoint file; `file` names it in errors. See `read(from:)`.
    public static func parse(_ data: Data, file: String) throws -> TorchCheckpoint {
        let archive: Archive
        do { archive = try Archive(data: data, accessMode: .read) } catch {
            throw FormatError(file: file, "not a PyTorch checkpoint: not a readable zip archive (\(error))")
        }
        var entries: [String: Entry] = [:]
        for entry in archive { entries[entry.path] = entry }
        let pickleNames = entries.keys.filter { name in
            let parts = name.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1] == "data.pkl" && !parts[0].isEmpty
        }.sorted()
        guard let pickleName = pickleNames.first else {
            throw FormatError(file: file, "not a PyTorch checkpoint: the zip holds no <root>/data.pkl (a pre-1.6 legacy file is not supported)")
        }
        guard pickleNames.count == 1 else {
            throw FormatError(file: file, "the zip holds \(pickleNames.count) pickles (\(pickleNames.joined(separator: ", "))), expected one")
        }
        let root = String(pickleName.dropLast("/data.pkl".count))

        func contents(_ name: String) throws -> [UInt8]? {
            guard let entry = entries[name] else { return nil }
            guard entry.type == .file else { throw FormatError(file: file, "\(name) is not a file entry") }
            guard entry.uncompressedSize <= maximumEntryBytes,
                  entry.compressedSize == entry.uncompressedSize || entry.uncompressedSize <= UInt64(data.count) * 64 else {
                throw FormatError(file: file, "\(name) declares \(entry.uncompressedSize) bytes, too many for a \(data.count)-byte archive")
            }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(entry.uncompressedSize))
            do {
                _ = try archive.extract(entry, skipCRC32: false) { chunk in bytes.append(contentsOf: chunk) }
            } catch {
                throw FormatError(file: file, "\(name): damaged zip entry (\(error))")
            }
            guard UInt64(bytes.count) == entry.uncompressedSize else {
                throw FormatError(file: file, "\(name): \(bytes.count) bytes read, its header declares \(entry.uncompressedSize)")
            }
            return bytes
        }

        var bigEndian = false
        if let order = try contents(root + "/byteorder") {
            switch String(decoding: order, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) {
            case "little": break
            case "big": bigEndian = true
            case let other: throw FormatError(file: file, "\(root)/byteorder is '\(other)', expected little or big")
            }
        }
        let formatVersion = try contents(root + "/version").map {
            String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let pickle = try contents(pickleName)!
        let unpickler = Unpickler(bytes: pickle, file: "\(file) [\(pickleName)]", baseOffset: 0) { key, dtype, elements in
            let name = "\(root)/data/\(key)"
            guard var bytes = try contents(name) else {
                throw FormatError(file: file, "storage \(name) is named by the pickle but missing from the zip")
            }
            guard bytes.count == elements * dtype.size else {
                throw FormatError(file: file, "storage \(name) holds \(bytes.count) bytes, the pickle declares \(elements) \(dtype.rawValue) elements (\(elements * dtype.size) bytes)")
            }
            if bigEndian && dtype.size > 1 {
                for start in stride(from: 0, to: bytes.count, by: dtype.size) { bytes[start..<(start + dtype.size)].reverse() }
            }
            return bytes
        }
        let value = try unpickler.load()
        var checkpoint = try Self.interpret(value, file: "\(file) [\(pickleName)]")
        checkpoint.formatVersion = formatVersion
        return checkpoint
    }

    /// The state_dict in a whole module, a state_dict, or a dict holding one.
    static func interpret(_ value: PickleValue, file: String) throws -> TorchCheckpoint {
        switch value {
        case .object(let object):
            var walk = ModuleWalk(file: file)
            try walk.visit(object, path: "", depth: 0)
            return TorchCheckpoint(kind: .module(className: object.className), tensors: walk.tensors,
                                   modules: walk.modules, formatVersion: nil, parameterCount: walk.parameterCount)
        case .dict(let dict):
            if let tensors = try stateDict(dict, file: file) {
                return TorchCheckpoint(kind: .stateDict, tensors: tensors, modules: [], formatVersion: nil, parameterCount: nil)
            }
            for key in ["state_dict", "model_state_dict", "model"] {
                if let inner = dict[key], case .dict = inner { return try interpret(inner, file: file) }
                if let inner = dict[key], case .object = inner { return try interpret(inner, file: file) }
            }
            throw FormatError(file: file, "the pickle is a dict but not a state_dict (values are not all tensors) and holds no state_dict, model_state_dict or model")
        default:
            throw FormatError(file: file, "the pickle holds a \(value.kindName), expected a module or a state_dict")
        }
    }

    /// A dict whose values are all tensors, keyed by strings, as state_dict tensors; nil otherwise.
    static func stateDict(_ dict: PickleDict, file: String) throws -> [SafetensorsTensor]? {
        var tensors: [SafetensorsTensor] = []
        for (key, value) in zip(dict.keys, dict.values) {
            guard case .string(let name) = key, case .tensor(let tensor) = value else { return nil }
            tensors.append(SafetensorsTensor(name: name, dtype: tensor.dtype.safetensors, shape: tensor.shape, bytes: tensor.bytes))
        }
        return tensors
    }
}

/// Collects a module tree's state the way `Module.state_dict()` orders it.
private struct ModuleWalk {
    let file: String
    var tensors: [SafetensorsTensor] = []
    var modules: [TorchModule] = []
    var names = Set<String>()
    var visited = Set<ObjectIdentifier>()
    var parameterCount = 0

    init(file: String) { self.file = file }

    mutating func visit(_ object: PickleObject, path: String, depth: Int) throws {
        guard depth <= 64 else { throw FormatError(file: file, "modules nest deeper than 64 levels at \(path)") }
        guard visited.insert(ObjectIdentifier(object)).inserted else {
            throw FormatError(file: file, "module \(path.isEmpty ? "(root)" : path) appears twice in the module tree")
        }
        modules.append(TorchModule(path: path, className: object.className))
        guard let dict = object.dictionary else {
            throw FormatError(file: file, "module \(path.isEmpty ? "(root)" : path) (\(object.className)) has no __dict__ state")
        }
        let prefix = path.isEmpty ? "" : path + "."
        var nonPersistent = Set<String>()
        if case .list(let names)? = dict["_non_persistent_buffers_set"] {
            for case .string(let name) in names.items { nonPersistent.insert(name) }
        }
        for (field, skip) in [("_parameters", Set<String>()), ("_buffers", nonPersistent)] {
            guard let value = dict[field] else { continue }
            guard case .dict(let items) = value else {
                throw FormatError(file: file, "\(prefix)\(field) of \(object.className) is a \(value.kindName), expected a dict")
            }
            for (key, item) in zip(items.keys, items.values) {
                guard case .string(let name) = key else { throw FormatError(file: file, "\(prefix)\(field) has a non-string key") }
                if skip.contains(name) { continue }
                switch item {
                case .none: continue
                case .tensor(let tensor):
                    let full = prefix + name
                    guard names.insert(full).inserted else { throw FormatError(file: file, "tensor \(full) appears twice") }
                    tensors.append(SafetensorsTensor(name: full, dtype: tensor.dtype.safetensors, shape: tensor.shape, bytes: tensor.bytes))
                    if field == "_parameters" { parameterCount += tensor.shape.reduce(1, *) }
                default:
                    throw FormatError(file: file, "\(prefix)\(name) in \(field) is a \(item.kindName), expected a tensor")
                }
            }
        }
        if let value = dict["_modules"] {
            guard case .dict(let children) = value else {
                throw FormatError(file: file, "\(prefix)_modules of \(object.className) is a \(value.kindName), expected a dict")
            }
            for (key, child) in zip(children.keys, children.values) {
                guard case .string(let name) = key else { throw FormatError(file: file, "\(prefix)_modules has a non-string key") }
                switch child {
                case .none: continue
                case .object(let module): try visit(module, path: prefix + name, depth: depth + 1)
                default: throw FormatError(file: file, "module \(prefix)\(name) is a \(child.kindName), expected a module")
                }
            }
        }
    }
}
