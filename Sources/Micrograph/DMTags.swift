import Foundation

/// One value of a DigitalMicrograph tag.
public enum DMTagValue: Sendable, Equatable {
    case group(DMTagGroup)
    case integer(Int64)
    case unsigned(UInt64)
    case real(Double)
    case boolean(Bool)
    /// Type-18 strings, and arrays of 16-bit characters (how DM stores text such as `Name`
    /// and calibration units) decoded as UTF-16.
    case text(String)
    case structure([DMTagValue])
    /// Any other array; its elements stay in the file (see `DMArray`).
    case array(DMArray)

    /// The value as a number, when it is a scalar (booleans are 0/1).
    public var doubleValue: Double? {
        switch self {
        case .integer(let v): return Double(v)
        case .unsigned(let v): return Double(v)
        case .real(let v): return v
        case .boolean(let v): return v ? 1 : 0
        default: return nil
        }
    }

    /// The value as text: strings as they are, scalars printed.
    public var stringValue: String? {
        switch self {
        case .text(let s): return s
        case .integer, .unsigned, .boolean: return doubleValue.map { String(Int64($0)) }
        case .real(let v): return String(v)
        default: return nil
        }
    }

    public var group: DMTagGroup? {
        if case .group(let g) = self { return g }
        return nil
    }

    /// A one-line rendering for people (`hrtem show`).
    public var summary: String {
        switch self {
        case .group(let g): return "(group of \(g.tags.count))"
        case .integer(let v): return String(v)
        case .unsigned(let v): return String(v)
        case .real(let v): return String(v)
        case .boolean(let v): return v ? "true" : "false"
        case .text(let s): return "\"\(s)\""
        case .structure(let fields): return "(" + fields.map(\.summary).joined(separator: ", ") + ")"
        case .array(let a):
            if let values = a.values, values.count <= 16 {
                return "[" + values.map { String($0) }.joined(separator: ", ") + "]"
            }
            return "array of \(a.count) x type \(a.elementType) at byte \(a.offset)"
        }
    }
}

/// An array tag whose elements are left in the file (image data, large lists).
public struct DMArray: Sendable, Equatable {
    /// DM encoded element type (2 int16, 3 int32, 4 uint16, 5 uint32, 6 float32, 7 float64,
    /// 8 bool, 9 int8, 10 uint8, 11 int64, 12 uint64; 15 for arrays of structs).
    public var elementType: Int
    /// Bytes per element (sum of the fields for arrays of structs).
    public var elementSize: Int
    public var count: Int
    /// Byte offset of the first element in the file.
    public var offset: Int
    /// The elements as numbers for small scalar arrays (at most 64), else nil.
    public var values: [Double]?
    public var byteCount: Int { count * elementSize }
}

/// A named entry in a tag group (unnamed entries, such as the images of `ImageList`, have
/// an empty name and are addressed by their 1-based position).
public struct DMTag: Sendable, Equatable {
    public var name: String
    public var value: DMTagValue
    /// Byte offset of the tag entry in the file.
    public var offset: Int
}

/// A group of DM tags, addressable by path.
public struct DMTagGroup: Sendable, Equatable {
    public var tags: [DMTag]

    public init(tags: [DMTag] = []) { self.tags = tags }

    /// The value at a dotted path such as `ImageList.2.ImageTags.Microscope Info.Voltage`
    /// (a leading dot is allowed). A component matches a child by name; a number `n` matches
    /// the n-th child (1-based) when no child has that name, which is how unnamed entries such
    /// as the images of `ImageList` are addressed (`ImageList.1` is usually the thumbnail).
    /// Names containing dots are matched whole. Nil when nothing is there.
    public func value(at path: String) -> DMTagValue? {
        var components = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if components.first == "" { components.removeFirst() }
        return value(components[...])
    }

    private func value(_ components: ArraySlice<String>) -> DMTagValue? {
        guard !components.isEmpty else { return .group(self) }
        for length in stride(from: components.count, through: 1, by: -1) {
            let candidate = components.prefix(length).joined(separator: ".")
            if let tag = tags.first(where: { $0.name == candidate }) {
                let rest = components.dropFirst(length)
                if rest.isEmpty { return tag.value }
                if case .group(let child) = tag.value, let found = child.value(rest) { return found }
            }
        }
        if let index = Int(components.first!), index >= 1, index <= tags.count {
            let rest = components.dropFirst()
            if rest.isEmpty { return tags[index - 1].value }
            if case .group(let child) = tags[index - 1].value { return child.value(rest) }
        }
        return nil
    }

    public subscript(name: String) -> DMTagValue? { tags.first { $0.name == name }?.value }

    /// Every leaf as (dotted path with 1-based numbers for unnamed entries, value), depth first
    /// in file order.
    public func flattened(prefix: String = "") -> [(path: String, value: DMTagValue)] {
        var out = [(path: String, value: DMTagValue)]()
        for (index, tag) in tags.enumerated() {
            let name = tag.name.isEmpty ? String(index + 1) : tag.name
            let path = prefix.isEmpty ? name : prefix + "." + name
            if case .group(let child) = tag.value {
                out += child.flattened(prefix: path)
            } else {
                out.append((path, tag.value))
            }
        }
        return out
    }
}
