import Foundation
import Micrograph

/// A global the restricted unpickler lets a pickle name, and what it may do with it. Nothing
/// here is ever called: each case is interpreted by the unpickler itself.
enum AllowedGlobal: Equatable {
    /// `torch._utils._rebuild_tensor_v2`: REDUCE builds a tensor view of a storage.
    case rebuildTensor
    /// `torch._utils._rebuild_parameter`: REDUCE wraps a tensor as a parameter (same tensor).
    case rebuildParameter
    /// `collections.OrderedDict`: REDUCE or NEWOBJ make an (ordered) dictionary.
    case orderedDict
    /// `builtins.set` (`__builtin__.set` in protocol 2): REDUCE makes a set, kept as a list.
    case set
    /// `torch.FloatStorage` & co: only meaningful inside a storage's persistent id.
    case storageType(TorchDType)
    /// A module class (`torch.nn.modules...`, or a class of the saving script's `__main__`):
    /// NEWOBJ records an object of that name whose state BUILD stores; it is never instantiated.
    case moduleClass(String)

    /// The policy: which `module.name` pairs a tensor archive needs. Everything else is refused.
    static func resolve(module: String, name: String) -> AllowedGlobal? {
        switch (module, name) {
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensor
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("collections", "OrderedDict"): return .orderedDict
        case ("__builtin__", "set"), ("builtins", "set"): return .set
        default: break
        }
        if module == "torch", name.hasSuffix("Storage"), let dtype = TorchDType(storageName: name) {
            return .storageType(dtype)
        }
        guard isIdentifier(name) else { return nil }
        if module == "__main__" || module.hasPrefix("torch.nn.modules.") && module.split(separator: ".").allSatisfy({ isIdentifier(String($0)) }) {
            return .moduleClass(module + "." + name)
        }
        return nil
    }

    private static func isIdentifier(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return text.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }
}

/// Element types of PyTorch storages, by their legacy class names.
public enum TorchDType: String, Sendable, CaseIterable {
    case float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool

    init?(storageName: String) {
        switch storageName {
        case "FloatStorage": self = .float32
        case "DoubleStorage": self = .float64
        case "HalfStorage": self = .float16
        case "BFloat16Storage": self = .bfloat16
        case "LongStorage": self = .int64
        case "IntStorage": self = .int32
        case "ShortStorage": self = .int16
        case "CharStorage": self = .int8
        case "ByteStorage": self = .uint8
        case "BoolStorage": self = .bool
        default: return nil
        }
    }

    public var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    public var safetensors: SafetensorsDType {
        switch self {
        case .float32: return .F32
        case .float64: return .F64
        case .float16: return .F16
        case .bfloat16: return .BF16
        case .int64: return .I64
        case .int32: return .I32
        case .int16: return .I16
        case .int8: return .I8
        case .uint8: return .U8
        case .bool: return .BOOL
        }
    }
}

/// A tensor rebuilt from a storage: C-order little-endian bytes of `shape` (a contiguous view
/// shares the storage's buffer).
struct RebuiltTensor {
    var dtype: TorchDType
    var shape: [Int]
    var bytes: ArraySlice<UInt8>
}

/// Every container one unpickling made. Containers can nest as deep as the pickle says (and
/// form cycles through the memo); releasing them one by one through `release()` keeps their
/// teardown iterative, so no pickle can exhaust the call stack or leak through a cycle.
final class PickleArena {
    var lists: [PickleList] = []
    var dicts: [PickleDict] = []
    var objects: [PickleObject] = []
    var tuples: [PickleTuple] = []

    func list(_ items: [PickleValue] = []) -> PickleList { let value = PickleList(items); lists.append(value); return value }
    func dict() -> PickleDict { let value = PickleDict(); dicts.append(value); return value }
    func object(_ className: String) -> PickleObject { let value = PickleObject(className: className); objects.append(value); return value }
    func tuple(_ items: [PickleValue]) -> PickleValue { let value = PickleTuple(items); tuples.append(value); return .tuple(value) }

    /// Empties every container (each holds only leaves or containers the arena still owns),
    /// then lets go of them.
    func release() {
        for list in lists { list.items = [] }
        for dict in dicts { dict.removeAll() }
        for object in objects { object.state = nil }
        for tuple in tuples { tuple.items = [] }
        lists = []; dicts = []; objects = []; tuples = []
    }
}

final class PickleTuple {
    var items: [PickleValue]
    init(_ items: [PickleValue]) { self.items = items }
}

/// Objects whose identity matters while unpickling (the memo shares them, later opcodes mutate
/// them), so they are classes. They live only inside one `unpickle` call and its caller's walk.
final class PickleList {
    var items: [PickleValue]
    init(_ items: [PickleValue] = []) { self.items = items }
}

final class PickleDict {
    private(set) var keys: [PickleKey] = []
    private(set) var values: [PickleValue] = []
    private var index: [PickleKey: Int] = [:]
    /// State a BUILD gave the dictionary itself (an OrderedDict's `_metadata`, say).
    var attributes: PickleValue?

    func set(_ key: PickleKey, _ value: PickleValue) {
        if let at = index[key] { values[at] = value; return }
        index[key] = keys.count
        keys.append(key)
        values.append(value)
    }

    subscript(key: String) -> PickleValue? { index[.string(key)].map { values[$0] } }

    func removeAll() {
        keys = []; values = []; index = [:]; attributes = nil
    }
    var count: Int { keys.count }
}

/// A module object: its class name and the state BUILD gave it. It is never instantiated.
final class PickleObject {
    let className: String
    var state: PickleValue?
    init(className: String) { self.className = className }

    /// The object's `__dict__` (a dict state, or the first item of a `(dict, slots)` state).
    var dictionary: PickleDict? {
        switch state {
        case .dict(let dict): return dict
        case .tuple(let tuple):
            if let first = tuple.items.first, case .dict(let dict) = first { return dict }
            return nil
        default: return nil
        }
    }
}

/// Dictionary keys the unpickler accepts (what tensor archives use).
enum PickleKey: Hashable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case none
}

/// A pickled value as the restricted unpickler rebuilds it.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    case object(PickleObject)
    case global(AllowedGlobal, name: String)
    case storage(TorchStorage)
    case tensor(RebuiltTensor)

    var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .object(let object): return object.className
        case .global(_, let name): return name
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }

    var key: PickleKey? {
        switch self {
        case .string(let text): return .string(text)
        case .int(let value): return .int(value)
        case .bool(let value): return .bool(value)
        case .none: return PickleKey.none
        default: return nil
        }
    }
}

/// A storage named by a persistent id: its element type, its key in the archive
/// (`<root>/data/<key>`) and its element count, with the bytes once read.
struct TorchStorage {
    var dtype: TorchDType
    var key: String
    var elementCount: Int
    var bytes: [UInt8]
}
