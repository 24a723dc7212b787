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
        try read(from: url, reportingAs: url.path)
    }

    /// Parses the bytes of a checkpoint; `file` names it in errors. See `read(from:)`.
    /// The bytes pass through a temporary file: the zip reader's file access stays in bounds
    /// on damaged archives, where its in-memory access does not.
    public static func parse(_ data: Data, file: String) throws -> TorchCheckpoint {
        let temporary = FileManager.default.temporaryDirectory
            .appendingPathComponent("hrtem-checkpoint-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        do { try data.write(to: temporary) } catch {
            throw FormatError(file: file, "cannot stage the checkpoint in \(temporary.path): \(error.localizedDescription)")
        }
        defer { try? FileManager.default.removeItem(at: temporary) }
        return try read(from: temporary, reportingAs: file)
    }

    /// Reads the checkpoint at `url`, naming it `file` in errors (a file in a content store
    /// goes by its name on the mirror).
    public static func read(from url: URL, reportingAs file: String) throws -> TorchCheckpoint {
        let container = try CheckpointContainer(url, file: file)
        let root = container.root, pickleName = container.pickleName
        func contents(_ name: String) throws -> [UInt8]? { try container.contents(name) }

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
        let arena = PickleArena()
        defer { arena.release() }
        // Honest archives hold each tensor's bytes once (tied weights twice); these caps stop a
        // pickle that names the same storage over and over from multiplying memory.
        let outputBudget = 4 * container.archiveBytes + (1 << 20)
        let unpickler = Unpickler(bytes: pickle, file: "\(file) [\(pickleName)]", baseOffset: 0, loadStorage: { key, dtype, elements in
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
        }, arena: arena, gatherBudget: outputBudget)
        let value = try unpickler.load()
        var checkpoint = try Self.interpret(value, file: "\(file) [\(pickleName)]", outputBudget: outputBudget)
        checkpoint.formatVersion = formatVersion
        return checkpoint
    }

    /// The state_dict in a whole module, a state_dict, or a dict holding one.
    static func interpret(_ value: PickleValue, file: String, outputBudget: Int, depth: Int = 0) throws -> TorchCheckpoint {
        guard depth < 4 else { throw FormatError(file: file, "state_dict wrapped in more than 4 dicts") }
        switch value {
        case .object(let object):
            var walk = ModuleWalk(file: file, budget: outputBudget)
            try walk.visit(object, path: "", depth: 0)
            return TorchCheckpoint(kind: .module(className: object.className), tensors: walk.tensors,
                                   modules: walk.modules, formatVersion: nil, parameterCount: walk.parameterCount)
        case .dict(let dict):
            if let tensors = try stateDict(dict, file: file, budget: outputBudget) {
                return TorchCheckpoint(kind: .stateDict, tensors: tensors, modules: [], formatVersion: nil, parameterCount: nil)
            }
            for key in ["state_dict", "model_state_dict", "model"] {
                if let inner = dict[key], case .dict = inner { return try interpret(inner, file: file, outputBudget: outputBudget, depth: depth + 1) }
                if let inner = dict[key], case .object = inner { return try interpret(inner, file: file, outputBudget: outputBudget, depth: depth + 1) }
            }
            throw FormatError(file: file, "the pickle is a dict but not a state_dict (values are not all tensors) and holds no state_dict, model_state_dict or model")
        default:
            throw FormatError(file: file, "the pickle holds a \(value.kindName), expected a module or a state_dict")
        }
    }

    /// A dict whose values are all tensors, keyed by strings, as state_dict tensors; nil otherwise.
    static func stateDict(_ dict: PickleDict, file: String, budget: Int) throws -> [SafetensorsTensor]? {
        var tensors: [SafetensorsTensor] = []
        var total = 0
        for (key, value) in zip(dict.keys, dict.values) {
            guard case .string(let name) = key, case .tensor(let tensor) = value else { return nil }
            total += tensor.bytes.count
            guard total <= budget else { throw FormatError(file: file, "the state_dict's tensors add up to more than \(budget) bytes") }
            tensors.append(SafetensorsTensor(name: name, dtype: tensor.dtype.safetensors, shape: tensor.shape, bytes: Array(tensor.bytes)))
        }
        return tensors
    }
}

/// The zip layer of a checkpoint: its entries and the one `<root>/data.pkl`.
struct CheckpointContainer {
    let archive: Archive
    let entries: [String: Entry]
    let file: String
    let archiveBytes: Int
    let root: String
    let pickleName: String

    init(_ url: URL, file: String) throws {
        self.file = file
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)??.intValue
        guard let size else { throw FormatError(file: file, "cannot read: no such file") }
        archiveBytes = size
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            throw FormatError(file: file, "not a PyTorch checkpoint: not a readable zip archive (\(error))")
        }
        var entries: [String: Entry] = [:]
        for entry in archive { entries[entry.path] = entry }
        self.entries = entries
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
        self.pickleName = pickleName
        root = String(pickleName.dropLast("/data.pkl".count))
    }

    /// The bytes of entry `name` (CRC-checked), or nil when the zip has no such entry.
    func contents(_ name: String) throws -> [UInt8]? {
        guard let entry = entries[name] else { return nil }
        guard entry.type == .file else { throw FormatError(file: file, "\(name) is not a file entry") }
        guard entry.uncompressedSize <= TorchCheckpoint.maximumEntryBytes,
              entry.compressedSize == entry.uncompressedSize || entry.uncompressedSize <= UInt64(archiveBytes) * 64 else {
            throw FormatError(file: file, "\(name) declares \(entry.uncompressedSize) bytes, too many for a \(archiveBytes)-byte archive")
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

    var pickle: [UInt8] { get throws { try contents(pickleName)! } }
}

/// Collects a module tree's state the way `Module.state_dict()` orders it.
private struct ModuleWalk {
    let file: String
    var tensors: [SafetensorsTensor] = []
    var modules: [TorchModule] = []
    var names = Set<String>()
    var visited = Set<ObjectIdentifier>()
    var parameterCount = 0
    let budget: Int
    var total = 0

    init(file: String, budget: Int) { self.file = file; self.budget = budget }

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
                    total += tensor.bytes.count
                    guard total <= budget else { throw FormatError(file: file, "the modules' tensors add up to more than \(budget) bytes") }
                    tensors.append(SafetensorsTensor(name: full, dtype: tensor.dtype.safetensors, shape: tensor.shape, bytes: Array(tensor.bytes)))
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
