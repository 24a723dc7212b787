import Foundation
import Micrograph

/// A restricted unpickler for PyTorch archives (protocols 0-2, plus the framing and short forms
/// of protocol 4 that newer writers may emit).
///
/// Loading never runs code: GLOBAL only resolves the names of `AllowedGlobal` (everything else,
/// `os.system`, `builtins.eval`, `subprocess.Popen`..., ends the load with an error naming the
/// global and its offset), REDUCE only interprets tensor rebuilding, OrderedDict and set, and
/// NEWOBJ/BUILD on a module class record its name and state. Every read is bounds-checked and
/// the stack, memo and sizes are capped, so a damaged pickle ends in a `FormatError` rather than
/// a crash, a hang or unbounded memory.
struct Unpickler {
    let bytes: [UInt8]
    let file: String
    /// Where the pickle starts inside `file` (errors give file offsets).
    let baseOffset: Int
    /// Reads storage `key` of `dtype` holding `elementCount` elements (its bytes must match).
    let loadStorage: (String, TorchDType, Int) throws -> [UInt8]
    /// Owns every container made; the caller releases it when done with the result.
    let arena: PickleArena
    /// Bytes that strided views may gather into new buffers, all together.
    let gatherBudget: Int

    private static let maximumStack = 1 << 20
    private static let maximumMemo = 1 << 22

    func error(_ offset: Int, _ message: String) -> FormatError {
        FormatError(file: file, offset: baseOffset + offset, "pickle: " + message)
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    func load() throws -> PickleValue {
        var gathered = 0
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]
        var storages: [String: TorchStorage] = [:]
        var position = 0
        let count = bytes.count

        func need(_ n: Int, at start: Int) throws {
            guard n >= 0, position + n <= count else {
                throw error(start, "truncated: opcode needs \(n) more bytes, \(count - position) left")
            }
        }
        func readUInt(_ n: Int, at start: Int) throws -> UInt64 {
            try need(n, at: start)
            var value: UInt64 = 0
            for index in 0..<n { value |= UInt64(bytes[position + index]) << (8 * UInt64(index)) }
            position += n
            return value
        }
        func readBytes(_ n: Int, at start: Int) throws -> ArraySlice<UInt8> {
            try need(n, at: start)
            defer { position += n }
            return bytes[position..<(position + n)]
        }
        func readLine(at start: Int) throws -> String {
            guard let end = bytes[position...].firstIndex(of: 0x0A) else {
                throw error(start, "truncated: no newline ends the opcode's argument")
            }
            defer { position = end + 1 }
            guard let text = String(bytes: bytes[position..<end], encoding: .utf8) else {
                throw error(start, "argument is not UTF-8 text")
            }
            return text
        }
        func pop(at start: Int) throws -> PickleValue {
            guard let value = stack.popLast() else { throw error(start, "stack underflow") }
            if let mark = marks.last, stack.count < mark { throw error(start, "stack underflow below a MARK") }
            return value
        }
        func popMark(at start: Int) throws -> [PickleValue] {
            guard let mark = marks.popLast() else { throw error(start, "no MARK on the stack") }
            let items = Array(stack[mark...])
            stack.removeSubrange(mark...)
            return items
        }
        func push(_ value: PickleValue, at start: Int) throws {
            guard stack.count < Self.maximumStack else { throw error(start, "stack exceeds \(Self.maximumStack) items") }
            stack.append(value)
        }
        func memoize(_ index: Int, at start: Int) throws {
            guard let top = stack.last else { throw error(start, "PUT with an empty stack") }
            guard index >= 0, index < Self.maximumMemo else { throw error(start, "memo index \(index) out of range") }
            memo[index] = top
        }
        func recall(_ index: Int, at start: Int) throws {
            guard let value = memo[index] else { throw error(start, "memo index \(index) was never stored") }
            try push(value, at: start)
        }
        func string(_ slice: ArraySlice<UInt8>, at start: Int) throws -> String {
            guard let text = String(bytes: slice, encoding: .utf8) else { throw error(start, "string is not UTF-8") }
            return text
        }
        func length(_ value: UInt64, at start: Int) throws -> Int {
            guard value <= UInt64(count - position) else {
                throw error(start, "truncated: a \(value)-byte argument, \(count - position) bytes left")
            }
            return Int(value)
        }
        func addItems(_ items: [PickleValue], to target: PickleValue, at start: Int) throws {
            switch target {
            case .list(let list): list.items.append(contentsOf: items)
            default: throw error(start, "APPEND to a \(target.kindName), expected a list")
            }
        }
        func setItems(_ items: [PickleValue], in target: PickleValue, at start: Int) throws {
            guard case .dict(let dict) = target else { throw error(start, "SETITEM on a \(target.kindName), expected a dict") }
            guard items.count % 2 == 0 else { throw error(start, "SETITEMS with an odd number of items") }
            for pair in stride(from: 0, to: items.count, by: 2) {
                guard let key = items[pair].key else {
                    throw error(start, "dictionary key of type \(items[pair].kindName) is not supported")
                }
                dict.set(key, items[pair + 1])
            }
        }
        func global(module: String, name: String, at start: Int) throws -> PickleValue {
            guard let allowed = AllowedGlobal.resolve(module: module, name: name) else {
                throw error(start, "refused global '\(module).\(name)': a tensor archive only names torch tensor rebuilders, storages, OrderedDict, set and module classes; nothing was run")
            }
            return .global(allowed, name: "\(module).\(name)")
        }

        while true {
            guard position < count else { throw error(position, "truncated: the pickle ends without STOP") }
            let start = position
            let opcode = bytes[position]
            position += 1
            switch opcode {
            case 0x80: // PROTO
                let version = try readUInt(1, at: start)
                guard version <= 5 else { throw error(start, "unknown pickle protocol \(version)") }
            case 0x95: // FRAME: a length prefix only
                _ = try readUInt(8, at: start)
            case 0x2E: // STOP
                guard let result = stack.popLast(), stack.isEmpty, marks.isEmpty else {
                    throw error(start, "STOP with \(stack.count) items and \(marks.count) marks on the stack, expected exactly one item")
                }
                return result
            case 0x28: // MARK
                guard marks.count < Self.maximumStack else { throw error(start, "too many MARKs") }
                marks.append(stack.count)
            case 0x30: // POP
                _ = try pop(at: start)
            case 0x31: // POP_MARK
                _ = try popMark(at: start)
            case 0x32: // DUP
                guard let top = stack.last else { throw error(start, "DUP with an empty stack") }
                try push(top, at: start)
            case 0x4E: try push(.none, at: start) // NONE
            case 0x88: try push(.bool(true), at: start) // NEWTRUE
            case 0x89: try push(.bool(false), at: start) // NEWFALSE
            case 0x4A: // BININT
                try push(.int(Int64(Int32(bitPattern: UInt32(try readUInt(4, at: start))))), at: start)
            case 0x4B: // BININT1
                try push(.int(Int64(try readUInt(1, at: start))), at: start)
            case 0x4D: // BININT2
                try push(.int(Int64(try readUInt(2, at: start))), at: start)
            case 0x49, 0x4C: // INT, LONG (text)
                var text = try readLine(at: start)
                if text.hasSuffix("L") { text.removeLast() }
                switch text {
                case "00": try push(.bool(false), at: start)
                case "01": try push(.bool(true), at: start)
                default:
                    guard let value = Int64(text) else { throw error(start, "integer '\(text)' is not a 64-bit integer") }
                    try push(.int(value), at: start)
                }
            case 0x8A, 0x8B: // LONG1, LONG4: little-endian two's complement
                let n = try length(try readUInt(opcode == 0x8A ? 1 : 4, at: start), at: start)
                guard n <= 8 else { throw error(start, "a \(n)-byte integer does not fit 64 bits") }
                let raw = try readBytes(n, at: start)
                var value: UInt64 = 0
                for (index, byte) in raw.enumerated() { value |= UInt64(byte) << (8 * UInt64(index)) }
                if n > 0, n < 8, raw.last! & 0x80 != 0 { value |= ~0 << (8 * UInt64(n)) }
                try push(.int(Int64(bitPattern: value)), at: start)
            case 0x47: // BINFLOAT: big-endian double
                let raw = try readBytes(8, at: start)
                var bits: UInt64 = 0
                for byte in raw { bits = bits << 8 | UInt64(byte) }
                try push(.float(Double(bitPattern: bits)), at: start)
            case 0x46: // FLOAT (text)
                let text = try readLine(at: start)
                guard let value = Double(text) else { throw error(start, "float '\(text)' is not a number") }
                try push(.float(value), at: start)
            case 0x58: // BINUNICODE
                let n = try length(try readUInt(4, at: start), at: start)
                try push(.string(try string(try readBytes(n, at: start), at: start)), at: start)
            case 0x8C: // SHORT_BINUNICODE
                let n = try length(try readUInt(1, at: start), at: start)
                try push(.string(try string(try readBytes(n, at: start), at: start)), at: start)
            case 0x8D: // BINUNICODE8
                let n = try length(try readUInt(8, at: start), at: start)
                try push(.string(try string(try readBytes(n, at: start), at: start)), at: start)
            case 0x54, 0x55: // BINSTRING, SHORT_BINSTRING: Python 2 str, read as Latin-1 text
                let n = try length(try readUInt(opcode == 0x54 ? 4 : 1, at: start), at: start)
                let raw = try readBytes(n, at: start)
                try push(.string(String(raw.map { Character(Unicode.Scalar($0)) })), at: start)
            case 0x42, 0x43, 0x8E: // BINBYTES, SHORT_BINBYTES, BINBYTES8
                let width = opcode == 0x42 ? 4 : opcode == 0x43 ? 1 : 8
                let n = try length(try readUInt(width, at: start), at: start)
                try push(.bytes(Array(try readBytes(n, at: start))), at: start)
            case 0x29: try push(arena.tuple([]), at: start) // EMPTY_TUPLE
            case 0x74: try push(arena.tuple(try popMark(at: start)), at: start) // TUPLE
            case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
                let n = Int(opcode - 0x84)
                var items: [PickleValue] = []
                for _ in 0..<n { items.append(try pop(at: start)) }
                try push(arena.tuple(items.reversed()), at: start)
            case 0x5D: try push(.list(arena.list()), at: start) // EMPTY_LIST
            case 0x6C: try push(.list(arena.list(try popMark(at: start))), at: start) // LIST
            case 0x61: // APPEND
                let item = try pop(at: start)
                guard let target = stack.last else { throw error(start, "APPEND with an empty stack") }
                try addItems([item], to: target, at: start)
            case 0x65: // APPENDS
                let items = try popMark(at: start)
                guard let target = stack.last else { throw error(start, "APPENDS with an empty stack") }
                try addItems(items, to: target, at: start)
            case 0x7D: try push(.dict(arena.dict()), at: start) // EMPTY_DICT
            case 0x64: // DICT
                let dict = arena.dict()
                try setItems(try popMark(at: start), in: .dict(dict), at: start)
                try push(.dict(dict), at: start)
            case 0x73: // SETITEM
                let value = try pop(at: start), key = try pop(at: start)
                guard let target = stack.last else { throw error(start, "SETITEM with an empty stack") }
                try setItems([key, value], in: target, at: start)
            case 0x75: // SETITEMS
                let items = try popMark(at: start)
                guard let target = stack.last else { throw error(start, "SETITEMS with an empty stack") }
                try setItems(items, in: target, at: start)
            case 0x8F: try push(.list(arena.list()), at: start) // EMPTY_SET, kept as a list
            case 0x90: // ADDITEMS
                let items = try popMark(at: start)
                guard let target = stack.last else { throw error(start, "ADDITEMS with an empty stack") }
                try addItems(items, to: target, at: start)
            case 0x71: try memoize(Int(try readUInt(1, at: start)), at: start) // BINPUT
            case 0x72: try memoize(Int(try readUInt(4, at: start)), at: start) // LONG_BINPUT
            case 0x70: // PUT
                let text = try readLine(at: start)
                guard let index = Int(text) else { throw error(start, "PUT index '\(text)' is not a number") }
                try memoize(index, at: start)
            case 0x94: try memoize(memo.count, at: start) // MEMOIZE
            case 0x68: try recall(Int(try readUInt(1, at: start)), at: start) // BINGET
            case 0x6A: try recall(Int(try readUInt(4, at: start)), at: start) // LONG_BINGET
            case 0x67: // GET
                let text = try readLine(at: start)
                guard let index = Int(text) else { throw error(start, "GET index '\(text)' is not a number") }
                try recall(index, at: start)
            case 0x63: // GLOBAL
                let module = try readLine(at: start), name = try readLine(at: start)
                try push(try global(module: module, name: name, at: start), at: start)
            case 0x93: // STACK_GLOBAL
                let nameValue = try pop(at: start), moduleValue = try pop(at: start)
                guard case .string(let module) = moduleValue, case .string(let name) = nameValue else {
                    throw error(start, "STACK_GLOBAL needs two strings, found \(moduleValue.kindName) and \(nameValue.kindName)")
                }
                try push(try global(module: module, name: name, at: start), at: start)
            case 0x51: // BINPERSID
                let id = try pop(at: start)
                try push(.storage(try persistentLoad(id, storages: &storages, at: start)), at: start)
            case 0x52: // REDUCE
                let arguments = try pop(at: start), callable = try pop(at: start)
                try push(try reduce(callable, arguments, gathered: &gathered, at: start), at: start)
            case 0x81: // NEWOBJ
                let arguments = try pop(at: start), cls = try pop(at: start)
                guard case .global(let allowed, let name) = cls else {
                    throw error(start, "NEWOBJ on a \(cls.kindName), expected a class")
                }
                switch allowed {
                case .moduleClass(let className): try push(.object(arena.object(className)), at: start)
                case .orderedDict: try push(.dict(arena.dict()), at: start)
                default: throw error(start, "refused NEWOBJ of '\(name)' with \(arguments.kindName) arguments: not a module class")
                }
            case 0x62: // BUILD
                let state = try pop(at: start)
                guard let target = stack.last else { throw error(start, "BUILD with an empty stack") }
                switch target {
                case .object(let object): object.state = state
                case .dict(let dict): dict.attributes = state
                case .tensor: break // a tensor's extra state (hooks, attributes) is not needed
                default: throw error(start, "BUILD on a \(target.kindName): only module objects and dicts take state")
                }
            default:
                throw error(start, String(format: "unsupported opcode 0x%02X: a tensor archive never needs it", opcode))
            }
        }
    }

    /// `('storage', storage_type, key, location, numel)` -> the storage's bytes.
    private func persistentLoad(_ id: PickleValue, storages: inout [String: TorchStorage], at start: Int) throws -> TorchStorage {
        guard case .tuple(let tuple) = id, case let items = tuple.items, items.count == 5, case .string("storage") = items[0] else {
            throw error(start, "persistent id \(id.kindName) is not ('storage', type, key, location, numel)")
        }
        guard case .global(.storageType(let dtype), _) = items[1] else {
            throw error(start, "persistent id names storage type \(items[1].kindName), expected torch.<Type>Storage")
        }
        let key: String
        switch items[2] {
        case .string(let text): key = text
        case .int(let value): key = String(value)
        default: throw error(start, "persistent id key is a \(items[2].kindName), expected a string")
        }
        guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw error(start, "storage key '\(key)' is not a plain name")
        }
        guard case .int(let numel) = items[4], numel >= 0, numel <= Int64(Int32.max) else {
            throw error(start, "storage \(key): element count \(items[4].kindName) is not a non-negative integer")
        }
        if let known = storages[key] {
            guard known.dtype == dtype, known.elementCount == Int(numel) else {
                throw error(start, "storage \(key) is named twice with different types or sizes")
            }
            return known
        }
        let storage = TorchStorage(dtype: dtype, key: key, elementCount: Int(numel),
                                   bytes: try loadStorage(key, dtype, Int(numel)))
        storages[key] = storage
        return storage
    }

    private func reduce(_ callable: PickleValue, _ arguments: PickleValue, gathered: inout Int, at start: Int) throws -> PickleValue {
        guard case .global(let allowed, let name) = callable else {
            throw error(start, "refused REDUCE on a \(callable.kindName): only allowed globals may be called")
        }
        guard case .tuple(let argumentTuple) = arguments, case let args = argumentTuple.items else {
            throw error(start, "REDUCE of '\(name)' with \(arguments.kindName) arguments, expected a tuple")
        }
        switch allowed {
        case .orderedDict:
            let dict = arena.dict()
            if let first = args.first {
                guard args.count == 1, case .list(let pairs) = first else {
                    throw error(start, "OrderedDict takes () or ([(key, value), ...])")
                }
                for pair in pairs.items {
                    guard case .tuple(let kvTuple) = pair, case let kv = kvTuple.items, kv.count == 2, let key = kv[0].key else {
                        throw error(start, "OrderedDict item is not a (key, value) pair")
                    }
                    dict.set(key, kv[1])
                }
            }
            return .dict(dict)
        case .set:
            if args.isEmpty { return .list(arena.list()) }
            guard args.count == 1, case .list(let items) = args[0] else { throw error(start, "set takes () or ([items])") }
            return .list(arena.list(items.items))
        case .rebuildParameter:
            guard args.count >= 1, case .tensor = args[0] else {
                throw error(start, "_rebuild_parameter expects (tensor, requires_grad, hooks)")
            }
            return args[0]
        case .rebuildTensor:
            return .tensor(try rebuildTensor(args, gathered: &gathered, at: start))
        case .storageType, .moduleClass:
            throw error(start, "refused REDUCE on '\(name)': it is recorded by name only, never called")
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`
    /// -> the view's elements in C order.
    private func rebuildTensor(_ args: [PickleValue], gathered: inout Int, at start: Int) throws -> RebuiltTensor {
        guard args.count >= 4, case .storage(let storage) = args[0], case .int(let offset64) = args[1],
              case .tuple(let sizeTuple) = args[2], case .tuple(let strideTuple) = args[3] else {
            throw error(start, "_rebuild_tensor_v2 expects (storage, offset, size, stride, ...)")
        }
        func integers(_ items: [PickleValue], _ what: String) throws -> [Int] {
            try items.map { item in
                guard case .int(let value) = item, value >= 0, value <= Int64(Int32.max) else {
                    throw error(start, "tensor \(what) \(item.kindName) is not a non-negative integer")
                }
                return Int(value)
            }
        }
        let shape = try integers(sizeTuple.items, "size"), strides = try integers(strideTuple.items, "stride")
        guard shape.count == strides.count, shape.count <= 16 else {
            throw error(start, "tensor size has \(shape.count) dimensions and stride \(strides.count)")
        }
        guard offset64 >= 0, offset64 <= Int64(storage.elementCount) else {
            throw error(start, "tensor offset \(offset64) outside storage \(storage.key) of \(storage.elementCount) elements")
        }
        let offset = Int(offset64)
        var elementCount = 1
        for extent in shape {
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: extent)
            guard !overflow, product <= storage.elementCount || shape.contains(0) else {
                throw error(start, "tensor of size \(shape) is larger than storage \(storage.key) (\(storage.elementCount) elements)")
            }
            elementCount = product
        }
        let itemSize = storage.dtype.size
        if elementCount == 0 { return RebuiltTensor(dtype: storage.dtype, shape: shape, bytes: [][...]) }
        var last = offset
        var overflow = false
        for (extent, stride) in zip(shape, strides) {
            let (step, stepOverflow) = (extent - 1).multipliedReportingOverflow(by: stride)
            let (sum, sumOverflow) = last.addingReportingOverflow(step)
            overflow = overflow || stepOverflow || sumOverflow
            last = sum
        }
        guard !overflow, last < storage.elementCount else {
            throw error(start, "tensor of size \(shape), stride \(strides), offset \(offset) reaches element \(last) of storage \(storage.key), which holds \(storage.elementCount)")
        }
        var contiguous = true
        var expected = 1
        for (extent, stride) in zip(shape, strides).reversed() where extent != 1 {
            if stride != expected { contiguous = false; break }
            expected *= extent
        }
        if contiguous {
            let begin = offset * itemSize
            return RebuiltTensor(dtype: storage.dtype, shape: shape, bytes: storage.bytes[begin..<(begin + elementCount * itemSize)])
        }
        gathered += elementCount * itemSize
        guard gathered <= gatherBudget else {
            throw error(start, "strided tensor views would gather more than \(gatherBudget) bytes")
        }
        var out = [UInt8](repeating: 0, count: elementCount * itemSize)
        var index = [Int](repeating: 0, count: shape.count)
        for element in 0..<elementCount {
            var source = offset
            for axis in 0..<shape.count { source += index[axis] * strides[axis] }
            for byte in 0..<itemSize { out[element * itemSize + byte] = storage.bytes[source * itemSize + byte] }
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return RebuiltTensor(dtype: storage.dtype, shape: shape, bytes: out[...])
    }
}
