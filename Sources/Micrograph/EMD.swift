import CHDF5
import Foundation

/// libhdf5 as Debian builds it is not thread-safe, and ingest reads headers on several
/// threads: every libhdf5 call of the package (EMD here, the study-layout export and import in
/// Catalog) runs inside `HDF5Library.shared.run`.
/// `@unchecked Sendable`: the only state is the lock itself.
public final class HDF5Library: @unchecked Sendable {
    public static let shared = HDF5Library()
    /// Recursive: a handle released inside `run` closes its file through `run` again.
    private let lock = NSRecursiveLock()

    public func run<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        hrtem_h5_quiet()
        return try body()
    }
}

/// An open HDF5 file (by path, or an in-memory image for bytes that are not a file), closed
/// when released. Used only inside `HDF5Library.shared.run`. `@unchecked Sendable`: the handle
/// is immutable and every use is serialized by the library lock.
final class HDF5Handle: @unchecked Sendable {
    let id: hid_t
    let name: String
    let file: MappedFile

    /// Call inside `HDF5Library.shared.run`.
    init(_ file: MappedFile) throws {
        name = file.name
        self.file = file
        let opened: hid_t
        if file.descriptor >= 0 {
            opened = hrtem_h5_open_file(file.url.path)
        } else {
            opened = hrtem_h5_open_image(file.bytes.baseAddress, file.count)
        }
        guard opened >= 0 else {
            throw FormatError(file: file.name, offset: 0, "libhdf5 cannot open this HDF5 file (corrupt superblock or object headers)")
        }
        id = opened
    }

    deinit { HDF5Library.shared.run { _ = hrtem_h5_close_file(id) } }

    func error(_ path: String, _ message: String, offset: Int = 0) -> FormatError {
        FormatError(file: name, offset: offset, "HDF5 \(path): \(message)")
    }

    func exists(_ path: String) -> Bool { hrtem_h5_exists(id, path) > 0 }
    func kind(_ path: String) -> Int32 { exists(path) ? hrtem_h5_kind(id, path) : -1 }

    /// The names of a group's links in name order (at most `limit`).
    func children(_ path: String, limit: Int = 4096) throws -> [String] {
        let count = hrtem_h5_child_count(id, path)
        guard count >= 0 else { throw error(path, "cannot list the group") }
        guard count <= limit else { throw error(path, "group holds \(count) links (at most \(limit) expected)") }
        var names = [String]()
        var buffer = [CChar](repeating: 0, count: 1024)
        for index in 0..<Int(count) {
            let length = hrtem_h5_child_name(id, path, UInt(index), &buffer, buffer.count)
            guard length >= 0, length < buffer.count else { throw error(path, "cannot read the name of link \(index)") }
            names.append(cText(buffer))
        }
        return names
    }

    func describe(_ path: String) throws -> hrtem_h5_dataset_info {
        var info = hrtem_h5_dataset_info()
        guard kind(path) == 2, hrtem_h5_describe(id, path, &info) >= 0 else { throw error(path, "is not a readable dataset") }
        return info
    }

    enum Attribute { case number(Double), text(String) }

    func attribute(_ path: String, _ name: String) -> Attribute? {
        if hrtem_h5_attribute_is_variable_string(id, path, name) != 0 {
            return variableLengthStringAttribute(path, name).map(Attribute.text)
        }
        var number = 0.0
        var buffer = [CChar](repeating: 0, count: 4096)
        let result = hrtem_h5_read_attribute(id, path, name, &number, &buffer, buffer.count)
        if result == 1 { return .number(number) }
        if result >= 2 { return .text(cText(buffer)) }
        return nil
    }

    /// A variable-length string attribute, read without libhdf5's decoder: libhdf5 1.10 copies
    /// the string's global heap object whole into a buffer sized from the string's own length,
    /// and looks the object up by an index it does not check, so a corrupt file overruns memory
    /// there. Here the object header (version 1, as libhdf5 and h5py write by default) is walked
    /// for the attribute message, and the heap collection it points to is checked at every step.
    /// Nil for anything else (version 2 headers, dense attribute storage) or anything corrupt.
    func variableLengthStringAttribute(_ path: String, _ name: String) -> String? {
        var address: UInt64 = 0
        guard hrtem_h5_object_address(id, path, &address) >= 0 else { return nil }
        let bytes = file.bytes
        func u16(_ at: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
        func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        func fits(_ at: UInt64, _ count: Int) -> Bool { count >= 0 && at <= UInt64(bytes.count) && UInt64(count) <= UInt64(bytes.count) - at }
        guard fits(address, 16), bytes[Int(address)] == 1 else { return nil }
        var chunks = [(start: Int, size: Int)]()
        let firstSize = Int(u32(Int(address) + 8))
        guard fits(address + 16, firstSize) else { return nil }
        chunks.append((Int(address) + 16, firstSize))
        var chunkIndex = 0
        var messages = 0
        let wanted = Array(name.utf8)
        while chunkIndex < chunks.count, chunkIndex < 64 {
            let (start, size) = chunks[chunkIndex]
            chunkIndex += 1
            var at = start
            while at + 8 <= start + size {
                messages += 1
                guard messages <= 4096 else { return nil }
                let type = u16(at), length = u16(at + 2)
                let data = at + 8
                guard data + length <= start + size else { return nil }
                at = data + length
                if type == 0x10, length >= 16 {   // continuation: another chunk of messages
                    let next = u64(data), nextSize = u64(data + 8)
                    guard nextSize <= UInt64(Int32.max), fits(next, Int(nextSize)) else { return nil }
                    chunks.append((Int(next), Int(nextSize)))
                    continue
                }
                guard type == 0x0C, length >= 8 else { continue }
                let version = Int(bytes[data])
                guard (1...3).contains(version) else { continue }
                let nameSize = u16(data + 2), typeSize = u16(data + 4), spaceSize = u16(data + 6)
                func padded(_ n: Int) -> Int { version == 1 ? (n + 7) / 8 * 8 : n }
                let nameAt = data + (version == 3 ? 9 : 8)
                let typeAt = nameAt + padded(nameSize)
                let valueAt = typeAt + padded(typeSize) + padded(spaceSize)
                guard nameSize >= 1, valueAt + 16 <= data + length else { continue }
                let stored = bytes[nameAt..<(nameAt + nameSize)].prefix { $0 != 0 }
                guard stored.elementsEqual(wanted) else { continue }
                // Datatype: class 9 (variable-length) of type 1 (string).
                guard typeSize >= 8, bytes[typeAt] & 0x0F == 9, bytes[typeAt + 1] & 0x0F == 1 else { return nil }
                let characters = Int(u32(valueAt)), heap = u64(valueAt + 4), index = Int(u32(valueAt + 12))
                guard characters <= 1 << 20 else { return nil }
                return globalHeapObject(at: heap, index: index).map { object in
                    String(decoding: object.prefix(characters).prefix { $0 != 0 }, as: UTF8.self)
                }
            }
        }
        return nil
    }

    /// Object `index` of the global heap collection at `address`, checked against the
    /// collection and the file.
    func globalHeapObject(at address: UInt64, index: Int) -> ArraySlice<UInt8>? {
        let bytes = file.bytes
        guard index >= 1, address <= UInt64(bytes.count), UInt64(bytes.count) - address >= 16 else { return nil }
        let start = Int(address)
        guard bytes[start] == 0x47, bytes[start + 1] == 0x43, bytes[start + 2] == 0x4F, bytes[start + 3] == 0x4C, bytes[start + 4] == 1 else { return nil }
        let size = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: start + 8, as: UInt64.self))
        guard size >= 16, size <= UInt64(bytes.count - start) else { return nil }
        let end = start + Int(size)
        var at = start + 16
        while at + 16 <= end {
            let objectIndex = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
            let objectSize = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self))
            guard objectIndex != 0, objectSize <= UInt64(end - at - 16) else { return nil }
            if objectIndex == index { return Array(bytes[(at + 16)..<(at + 16 + Int(objectSize))])[...] }
            at += 16 + (Int(objectSize) + 7) / 8 * 8
        }
        return nil
    }

    /// Reads the hyperslab `start`/`count` as little-endian elements of `code` into `buffer`.
    func readSlab(_ path: String, code: Int32, start: [UInt64], count: [UInt64], into buffer: UnsafeMutableRawPointer) throws {
        let starts = start.map { CUnsignedLongLong($0) }, counts = count.map { CUnsignedLongLong($0) }
        guard hrtem_h5_read_slab(id, path, code, Int32(start.count), starts, counts, buffer) >= 0 else {
            throw error(path, "libhdf5 cannot read the pixels (corrupt or truncated data)")
        }
    }
}

/// Velox EMD (Thermo Fisher) and Berkeley EMD (NCEM) files, through libhdf5.
///
/// Velox: every `/Data/Image/<uuid>` group with a `Data` dataset is an image signal, in name
/// order; `Data` is `(height, width, frames)`, so frame k is the slab `[:, :, k]`; `Metadata`
/// is `(bytes, frames)` uint8 holding a JSON document per frame (the first is read). A signal's
/// title is its detector (`BinaryResult.Detector`). Pixel size from `BinaryResult.PixelSize`
/// in `PixelUnitX` (metres), the stack axis from `Scan.FrameTime` or the detector's
/// `ExposureTime` (seconds).
///
/// Berkeley: every group with attribute `emd_group_type = 1` holding `data` and `dim1..dimN`
/// is a signal, found depth first in name order. As HyperSpy/RosettaSciIO write and read them,
/// the stored array is the transpose of the image (x first): the frame is `data` transposed,
/// axis i calibrated by `dim(N-i)` (its first value the offset, its mean step the scale, its
/// `units` attribute the unit). Files with a `dim0` (py4DSTEM) are stored image-first.
///
/// Compound element types (Velox FFT and DPC: complex) and 1-D signals are refused.
struct EMDFile: PlaneSource {
    enum Layout { case velox, berkeleyTransposed, berkeleyDirect }

    let file: MappedFile
    let header: MicrographHeader
    let dataPath: String
    let layout: Layout
    let info: hrtem_h5_dataset_info
    let elementCode: Int32

    /// Velox or Berkeley, from the file's structure.
    static func flavour(of file: MappedFile) throws -> MicrographFormat {
        try HDF5Library.shared.run {
            let h5 = try HDF5Handle(file)
            if h5.exists("/Data/Image") { return .emdVelox }
            if !(try berkeleySignals(h5)).isEmpty { return .emdBerkeley }
            throw h5.error("/", "an HDF5 file that is neither Velox EMD (/Data/Image) nor Berkeley EMD (emd_group_type = 1 groups)")
        }
    }

    struct Signal {
        var group: String
        var title: String
        var info: hrtem_h5_dataset_info
    }

    static func berkeleySignals(_ h5: HDF5Handle) throws -> [Signal] {
        var found = [Signal]()
        var visited = 0
        func walk(_ path: String, depth: Int) throws {
            guard depth < 8 else { return }
            for name in try h5.children(path) {
                visited += 1
                guard visited <= 20_000 else { throw h5.error(path, "more than 20000 objects to search for EMD groups") }
                let child = path == "/" ? "/" + name : path + "/" + name
                guard h5.kind(child) == 1 else { continue }
                if case .number(let type)? = h5.attribute(child, "emd_group_type"), type == 1, h5.kind(child + "/data") == 2 {
                    found.append(Signal(group: child, title: name, info: try h5.describe(child + "/data")))
                } else {
                    try walk(child, depth: depth + 1)
                }
            }
        }
        try walk("/", depth: 0)
        return found
    }

    static func veloxSignals(_ h5: HDF5Handle) throws -> [Signal] {
        guard h5.kind("/Data/Image") == 1 else { return [] }
        var signals = [Signal]()
        for name in try h5.children("/Data/Image") where h5.kind("/Data/Image/\(name)/Data") == 2 {
            // Titles are the detector names in each signal's metadata (Velox's display labels are
            // variable-length strings, which libhdf5 1.10 cannot decode safely from a corrupt file).
            let (_, facts) = veloxCalibrations(veloxMetadata(h5, "/Data/Image/" + name), frames: 1)
            signals.append(Signal(group: "/Data/Image/" + name, title: facts.detector ?? name,
                                  info: try h5.describe("/Data/Image/\(name)/Data")))
        }
        return signals
    }

    static func pixelType(_ info: hrtem_h5_dataset_info, _ h5: HDF5Handle, _ path: String) throws -> (PixelType, Int32) {
        switch (info.typeClass, info.byteCount, info.isSigned != 0) {
        case (Int32(HRTEM_H5_INTEGER), 1, true): return (.int8, 1)
        case (Int32(HRTEM_H5_INTEGER), 2, true): return (.int16, 2)
        case (Int32(HRTEM_H5_INTEGER), 4, true): return (.int32, 3)
        case (Int32(HRTEM_H5_INTEGER), 8, true): return (.int64, 4)
        case (Int32(HRTEM_H5_INTEGER), 1, false): return (.uint8, 5)
        case (Int32(HRTEM_H5_INTEGER), 2, false): return (.uint16, 6)
        case (Int32(HRTEM_H5_INTEGER), 4, false): return (.uint32, 7)
        case (Int32(HRTEM_H5_INTEGER), 8, false): return (.uint64, 8)
        case (Int32(HRTEM_H5_FLOAT), 4, _): return (.float32, 9)
        case (Int32(HRTEM_H5_FLOAT), 8, _): return (.float64, 10)
        case (Int32(HRTEM_H5_COMPOUND), _, _):
            throw h5.error(path, "complex data (a compound of real and imaginary parts, as Velox stores FFT and DPC images) is not supported: hrtem reads real-valued frames only",
                           offset: Int(info.offset))
        default:
            throw h5.error(path, "elements of \(info.byteCount) bytes of HDF5 type class \(info.typeClass) are not image pixels", offset: Int(info.offset))
        }
    }

    init(_ file: MappedFile, signal selection: ImageSelection.Signal?) throws {
        self.file = file
        let parsed: (MicrographHeader, String, Layout, hrtem_h5_dataset_info, Int32) = try HDF5Library.shared.run {
            let h5 = try HDF5Handle(file)
            let velox = h5.exists("/Data/Image")
            let signals = velox ? try EMDFile.veloxSignals(h5) : try EMDFile.berkeleySignals(h5)
            guard !signals.isEmpty else {
                throw h5.error(velox ? "/Data/Image" : "/", velox ? "no image signal (no /Data/Image/<uuid>/Data dataset)" : "no Berkeley EMD signal (no emd_group_type = 1 group with data)")
            }
            let index: Int
            switch selection ?? .index(0) {
            case .index(let i):
                guard i >= 0, i < signals.count else {
                    throw h5.error(velox ? "/Data/Image" : "/", "signal \(i) does not exist: the file holds \(signals.count) image signal(s), numbered from 0 (titles: \(signals.map(\.title).joined(separator: ", ")))")
                }
                index = i
            case .title(let title):
                guard let i = signals.firstIndex(where: { $0.title == title }) else {
                    throw h5.error(velox ? "/Data/Image" : "/", "no image signal titled '\(title)' (titles: \(signals.map(\.title).joined(separator: ", ")))")
                }
                index = i
            }
            let signal = signals[index]
            let path = signal.group + (velox ? "/Data" : "/data")
            let (pixelType, code) = try EMDFile.pixelType(signal.info, h5, path)
            let dims = (0..<Int(signal.info.rank)).map { i in withUnsafeBytes(of: signal.info.dims) { Int($0.load(fromByteOffset: 8 * i, as: UInt64.self)) } }
            guard dims.allSatisfy({ $0 >= 1 && $0 <= Int(Int32.max) }) else { throw h5.error(path, "empty or absurd extent \(dims)") }
            var elements = 1
            for n in dims {
                let (product, overflow) = elements.multipliedReportingOverflow(by: n)
                guard !overflow, product <= Int.max / 16 else { throw h5.error(path, "extent \(dims) overflows") }
                elements = product
            }
            // Stored whole, the pixels lie in the file; compressed, deflate shrinks at most ~1000x.
            let byteCount = elements * pixelType.byteCount
            if signal.info.contiguous != 0 {
                guard signal.info.offset <= UInt64(file.count), byteCount <= file.count - Int(signal.info.offset) else {
                    throw h5.error(path, "\(dims) pixels of \(pixelType) need \(byteCount) bytes at byte \(signal.info.offset), the file has \(file.count)",
                                   offset: Int(min(signal.info.offset, UInt64(file.count))))
                }
            } else if byteCount / 1024 > file.count {
                throw h5.error(path, "\(dims) pixels of \(pixelType) (\(byteCount) bytes) cannot come from a file of \(file.count) bytes")
            }
            let others = signals.enumerated().filter { $0.offset != index }.map { other -> OtherImage in
                var otherDims = (0..<Int(other.element.info.rank)).map { i in withUnsafeBytes(of: other.element.info.dims) { Int($0.load(fromByteOffset: 8 * i, as: UInt64.self)) } }
                // In the frame's own axis order: Velox (h, w, frames) as [frames,] h, w; Berkeley reversed.
                if velox, otherDims.count == 3 { otherDims = otherDims[2] == 1 ? [otherDims[0], otherDims[1]] : [otherDims[2], otherDims[0], otherDims[1]] }
                else if !velox, !h5.exists(other.element.group + "/dim0") { otherDims.reverse() }
                let type = (try? EMDFile.pixelType(other.element.info, h5, other.element.group).0.rawValue) ?? "complex or unsupported"
                return OtherImage(index: other.offset + 1, shape: otherDims, pixelType: type, note: other.element.title)
            }
            if velox {
                guard dims.count == 3 || dims.count == 2 else {
                    throw h5.error(path, "a Velox image is (height, width, frames); this dataset has \(dims.count) dimension(s)")
                }
                let frames = dims.count == 3 ? dims[2] : 1
                let shape = frames == 1 ? [dims[0], dims[1]] : [frames, dims[0], dims[1]]
                let metadata = EMDFile.veloxMetadata(h5, signal.group)
                var (calibrations, facts) = EMDFile.veloxCalibrations(metadata, frames: frames)
                facts.title = signal.title
                var tags = [DMTag(name: "Title", value: .text(signal.title), offset: 0)]
                if let metadata { tags.append(DMTag(name: "Metadata", value: .group(jsonTags(metadata)), offset: 0)) }
                let header = MicrographHeader(file: file.name, format: .emdVelox, shape: shape, pixelType: pixelType, calibrations: calibrations,
                                              byteOrder: signal.info.bigEndian != 0 ? .bigEndian : .littleEndian,
                                              dataOffset: signal.info.contiguous != 0 && frames == 1 ? Int(signal.info.offset) : nil,
                                              tags: DMTagGroup(tags: tags), microscope: facts, otherImages: others, imageIndex: index + 1)
                return (header, path, Layout.velox, signal.info, code)
            }
            guard dims.count >= 2, dims.count <= 3 else {
                throw h5.error(path, dims.count == 1 ? "holds a 1-D signal (a spectrum), not an image: hrtem needs a 2-D image"
                                                     : "holds \(dims.count)-D data; hrtem reads 2-D images and 3-D stacks")
            }
            let direct = h5.exists(signal.group + "/dim0")
            let shape = direct ? dims : dims.reversed()
            var calibrations = [AxisCalibration]()
            var dimTags = [DMTag]()
            for axis in 0..<shape.count {
                let dimPath = signal.group + "/dim\(direct ? axis : shape.count - axis)"
                var calibration = AxisCalibration()
                if h5.kind(dimPath) == 2, let dimInfo = try? h5.describe(dimPath), dimInfo.rank == 1,
                   dimInfo.typeClass == Int32(HRTEM_H5_INTEGER) || dimInfo.typeClass == Int32(HRTEM_H5_FLOAT) {
                    let n = Int(dimInfo.dims.0)
                    if n >= 1, n <= 1 << 24 {
                        var values = [Double](repeating: 0, count: n)
                        try values.withUnsafeMutableBytes { try h5.readSlab(dimPath, code: 10, start: [0], count: [UInt64(n)], into: $0.baseAddress!) }
                        let scale = n >= 2 ? (values[n - 1] - values[0]) / Double(n - 1) : 1
                        calibration.scale = scale
                        calibration.origin = scale != 0 ? -values[0] / scale : 0
                    }
                }
                if case .text(let units)? = h5.attribute(dimPath, "units") { calibration.unit = units }
                var entries = [DMTag(name: "scale", value: .real(calibration.scale), offset: 0), DMTag(name: "units", value: .text(calibration.unit), offset: 0)]
                if case .text(let name)? = h5.attribute(dimPath, "name") { entries.append(DMTag(name: "name", value: .text(name), offset: 0)) }
                dimTags.append(DMTag(name: "dim\(direct ? axis : shape.count - axis)", value: .group(DMTagGroup(tags: entries)), offset: 0))
                calibrations.append(calibration)
            }
            var facts = MicroscopeFacts()
            facts.title = signal.title
            var tags = [DMTag(name: "Title", value: .text(signal.title), offset: 0), DMTag(name: "Dimensions", value: .group(DMTagGroup(tags: dimTags)), offset: 0)]
            var microscope = [DMTag]()
            for key in ["name", "voltage"] {
                switch h5.attribute("/microscope", key) {
                case .number(let v)?:
                    microscope.append(DMTag(name: key, value: .real(v), offset: 0))
                    if key == "voltage" { facts.voltage = v }
                case .text(let t)?:
                    microscope.append(DMTag(name: key, value: .text(t), offset: 0))
                    if key == "voltage", let v = Double(t) { facts.voltage = v }
                case nil: break
                }
            }
            if !microscope.isEmpty { tags.append(DMTag(name: "microscope", value: .group(DMTagGroup(tags: microscope)), offset: 0)) }
            facts.pixelSizeNM = calibrations.last?.nanometresPerPixel
            facts.pixelUnit = calibrations.last?.unit
            let header = MicrographHeader(file: file.name, format: .emdBerkeley, shape: shape, pixelType: pixelType, calibrations: calibrations,
                                          byteOrder: signal.info.bigEndian != 0 ? .bigEndian : .littleEndian, dataOffset: nil,
                                          tags: DMTagGroup(tags: tags), microscope: facts, otherImages: others, imageIndex: index + 1)
            return (header, path, direct ? Layout.berkeleyDirect : Layout.berkeleyTransposed, signal.info, code)
        }
        (header, dataPath, layout, info, elementCode) = (parsed.0, parsed.1, parsed.2, parsed.3, parsed.4)
    }

    /// The first frame's JSON metadata of a Velox signal, or nil.
    static func veloxMetadata(_ h5: HDF5Handle, _ group: String) -> [String: Any]? {
        let path = group + "/Metadata"
        guard let info = try? h5.describe(path), info.rank == 2, info.typeClass == Int32(HRTEM_H5_INTEGER), info.byteCount == 1 else { return nil }
        let length = Int(info.dims.0), columns = Int(info.dims.1)
        guard length >= 1, length <= 16 << 20, columns >= 1 else { return nil }
        var bytes = [UInt8](repeating: 0, count: length)
        guard (try? bytes.withUnsafeMutableBytes { try h5.readSlab(path, code: 5, start: [0, 0], count: [UInt64(length), 1], into: $0.baseAddress!) }) != nil else { return nil }
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return try? JSONSerialization.jsonObject(with: Data(bytes[..<end])) as? [String: Any]
    }

    /// Axes and facts from Velox metadata (all values are strings in Velox JSON).
    static func veloxCalibrations(_ metadata: [String: Any]?, frames: Int) -> ([AxisCalibration], MicroscopeFacts) {
        func value(_ path: String) -> String? {
            var node: Any? = metadata
            for key in path.split(separator: ".") { node = (node as? [String: Any])?[String(key)] }
            if let text = node as? String { return text }
            if let number = node as? NSNumber { return number.stringValue }
            return nil
        }
        func number(_ path: String) -> Double? { value(path).flatMap { Double($0) } }
        var facts = MicroscopeFacts()
        let unit = value("BinaryResult.PixelUnitX") ?? ""
        func axis(_ size: Double?, _ offset: Double?) -> AxisCalibration {
            guard let size, size.isFinite, size != 0 else { return AxisCalibration() }
            let (factor, name): (Double, String)
            switch unit {
            case "m": (factor, name) = (1e9, "nm")
            case "1/m": (factor, name) = (1e-9, "1/nm")
            default: (factor, name) = (1, unit)
            }
            let scale = size * factor
            return AxisCalibration(scale: scale, origin: (offset ?? 0) != 0 ? -((offset ?? 0) * factor) / scale : 0, unit: name)
        }
        let x = axis(number("BinaryResult.PixelSize.width"), number("BinaryResult.Offset.x"))
        let y = axis(number("BinaryResult.PixelSize.height"), number("BinaryResult.Offset.y"))
        let detectorIndex = value("BinaryResult.DetectorIndex") ?? "0"
        let exposure = number("Detectors.Detector-\(detectorIndex).ExposureTime")
        var calibrations = [y, x]
        if frames > 1 {
            let frameTime = number("Scan.FrameTime") ?? exposure
            calibrations.insert(frameTime.map { AxisCalibration(scale: $0, origin: 0, unit: "s") } ?? AxisCalibration(), at: 0)
        }
        facts.voltage = number("Optics.AccelerationVoltage")
        facts.indicatedMagnification = number("Optics.NominalMagnification")
        facts.exposureSeconds = exposure ?? number("Scan.FrameTime")
        facts.detector = value("BinaryResult.Detector") ?? value("Detectors.Detector-\(detectorIndex).DetectorName")
        facts.doseElectronsPerA2 = number("BinaryResult.Dose") ?? number("Optics.Dose")
        if let seconds = number("Acquisition.AcquisitionStartDatetime.DateTime") {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "UTC")
            formatter.dateFormat = "yyyy-MM-dd"
            let date = Date(timeIntervalSince1970: seconds)
            facts.acquisitionDate = formatter.string(from: date)
            formatter.dateFormat = "HH:mm:ss"
            facts.acquisitionTime = formatter.string(from: date) + " UTC"
        }
        facts.pixelSizeNM = x.nanometresPerPixel
        facts.pixelUnit = x.unit
        return (calibrations, facts)
    }

    var planeDims: (height: Int, width: Int) { (header.height, header.width) }

    func readPlane(_ index: Int, into destination: UnsafeMutableRawPointer) throws {
        let height = header.height, width = header.width
        let planeBytes = height * width * header.pixelType.byteCount
        switch layout {
        case .velox:
            if let offset = header.dataOffset {
                // One frame stored contiguously: straight from the file, no libhdf5 in the way.
                try file.read(offset: offset, count: planeBytes, into: destination)
                if header.byteOrder == .bigEndian { swapInPlace(destination, count: height * width, elementSize: header.pixelType.byteCount) }
                return
            }
            let rank = Int(info.rank)
            try HDF5Library.shared.run {
                let h5 = try HDF5Handle(file)
                try h5.readSlab(dataPath, code: elementCode, start: rank == 3 ? [0, 0, UInt64(index)] : [0, 0],
                                count: rank == 3 ? [UInt64(height), UInt64(width), 1] : [UInt64(height), UInt64(width)], into: destination)
            }
        case .berkeleyDirect:
            try HDF5Library.shared.run {
                let h5 = try HDF5Handle(file)
                let stack = header.shape.count == 3
                try h5.readSlab(dataPath, code: elementCode, start: stack ? [UInt64(index), 0, 0] : [0, 0],
                                count: stack ? [1, UInt64(height), UInt64(width)] : [UInt64(height), UInt64(width)], into: destination)
            }
        case .berkeleyTransposed:
            // Stored (x, y[, z]): read the plane as (width, height) and transpose it.
            let size = header.pixelType.byteCount
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(planeBytes, 1), alignment: 16)
            defer { scratch.deallocate() }
            try HDF5Library.shared.run {
                let h5 = try HDF5Handle(file)
                let stack = header.shape.count == 3
                try h5.readSlab(dataPath, code: elementCode, start: stack ? [0, 0, UInt64(index)] : [0, 0],
                                count: stack ? [UInt64(width), UInt64(height), 1] : [UInt64(width), UInt64(height)], into: scratch)
            }
            for x in 0..<width {
                for y in 0..<height {
                    (destination + (y * width + x) * size).copyMemory(from: scratch + (x * height + y) * size, byteCount: size)
                }
            }
        }
    }
}

/// The NUL-terminated text in a C buffer, as UTF-8.
func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A JSON document as a tag tree (keys sorted; arrays as numbered entries).
func jsonTags(_ object: [String: Any]) -> DMTagGroup {
    func value(_ any: Any) -> DMTagValue {
        switch any {
        case let dictionary as [String: Any]: return .group(jsonTags(dictionary))
        case let array as [Any]: return .group(DMTagGroup(tags: array.map { DMTag(name: "", value: value($0), offset: 0) }))
        case let text as String: return .text(text)
        case let number as NSNumber: return .real(number.doubleValue)
        default: return .text("\(any)")
        }
    }
    return DMTagGroup(tags: object.keys.sorted().map { DMTag(name: $0, value: value(object[$0]!), offset: 0) })
}

/// One image signal for `writeVeloxEMD`: a frame or a stack of frames, a title (the display
/// label and detector name) and metadata entries as dotted paths into Velox's JSON
/// (`"Optics.AccelerationVoltage": "300000"`; Velox writes every value as a string).
public struct VeloxImageSignal<P: StoredPixel>: Sendable {
    public var title: String
    public var frames: [Raster<P>]
    public var pixelSizeNM: Double?
    public var metadata: [String: String]

    public init(title: String, frames: [Raster<P>], pixelSizeNM: Double? = nil, metadata: [String: String] = [:]) {
        self.title = title
        self.frames = frames
        self.pixelSizeNM = pixelSizeNM
        self.metadata = metadata
    }
}

/// The element code the CHDF5 shim uses for a pixel type (nil for bool).
func hdf5ElementCode(_ type: PixelType) -> Int32? {
    switch type {
    case .int8: return 1
    case .int16: return 2
    case .int32: return 3
    case .int64: return 4
    case .uint8: return 5
    case .uint16: return 6
    case .uint32: return 7
    case .uint64: return 8
    case .float32: return 9
    case .float64: return 10
    case .bool: return nil
    }
}

/// Writes image signals as a Velox EMD file (for the project's fixtures): `/Version`,
/// `/Data/Image/<id>/Data` `(height, width, frames)` stored contiguously and little-endian,
/// `/Data/Image/<id>/Metadata` (the JSON, one column per frame), and an image display per signal
/// carrying its title. Signal ids are derived from the signal's position, so the same input
/// gives the same bytes apart from HDF5's own timestamps (none are written). Atomic.
/// - Throws: `FormatError` naming the file.
public func writeVeloxEMD<P: StoredPixel>(_ signals: [VeloxImageSignal<P>], to url: URL) throws {
    guard let code = hdf5ElementCode(P.pixelType) else { throw FormatError(file: url.path, "EMD cannot store \(P.pixelType) pixels") }
    guard !signals.isEmpty else { throw FormatError(file: url.path, "an EMD file needs at least one image signal") }
    for signal in signals {
        guard let first = signal.frames.first, signal.frames.allSatisfy({ $0.width == first.width && $0.height == first.height }) else {
            throw FormatError(file: url.path, "signal '\(signal.title)' needs frames of one size")
        }
    }
    try writeNewHDF5File(at: url) { file, check in
        func group(_ path: String) throws {
            let id = hrtem_h5_create_group(file, path)
            guard id >= 0 else { throw FormatError(file: url.path, "libhdf5 cannot create group \(path)") }
            _ = hrtem_h5_close_group(id)
        }
        try check(hrtem_h5_write_string_dataset(file, "/Version", "{\n    \"version\": \"8\",\n    \"format\": \"Velox\"\n}\n"), "/Version")
        for path in ["/Data", "/Data/Image", "/Presentation", "/Presentation/Displays", "/Presentation/Displays/ImageDisplay"] { try group(path) }
        for (index, signal) in signals.enumerated() {
            let id = String(format: "%032x", index + 1)
            let base = "/Data/Image/" + id
            try group(base)
            let first = signal.frames[0]
            let n = signal.frames.count
            let size = P.pixelType.byteCount
            var interleaved = [UInt8](repeating: 0, count: first.count * n * size)
            for (k, frame) in signal.frames.enumerated() {
                let bytes = frame.littleEndianBytes
                if n == 1 { interleaved = bytes; break }
                for i in 0..<first.count {
                    for b in 0..<size { interleaved[(i * n + k) * size + b] = bytes[i * size + b] }
                }
            }
            let dims: [CUnsignedLongLong] = [CUnsignedLongLong(first.height), CUnsignedLongLong(first.width), CUnsignedLongLong(n)]
            try check(interleaved.withUnsafeBytes { hrtem_h5_write_dataset(file, base + "/Data", code, 3, dims, $0.baseAddress) }, base + "/Data")
            var metadata: [String: Any] = [:]
            func set(_ path: String, _ value: String) {
                func insert(_ keys: ArraySlice<Substring>, into node: inout [String: Any]) {
                    let key = String(keys.first!)
                    if keys.count == 1 { node[key] = value; return }
                    var child = node[key] as? [String: Any] ?? [:]
                    insert(keys.dropFirst(), into: &child)
                    node[key] = child
                }
                insert(path.split(separator: ".")[...], into: &metadata)
            }
            set("Core.MetadataDefinitionVersion", "7.9")
            set("Acquisition.AcquisitionStartDatetime.DateTime", "0")
            set("BinaryResult.AcquisitionUnit", "CameraImage")
            set("BinaryResult.DetectorIndex", "0")
            set("BinaryResult.Detector", signal.title)
            set("BinaryResult.ImageSize.width", String(first.width))
            set("BinaryResult.ImageSize.height", String(first.height))
            set("Detectors.Detector-0.DetectorName", signal.title)
            set("Detectors.Detector-0.DetectorType", "ImagingDetector")
            set("Detectors.Detector-0.ExposureTime", "1")
            set("Scan.ScanSize.width", "0")
            set("Scan.ScanSize.height", "0")
            if let size = signal.pixelSizeNM {
                set("BinaryResult.PixelSize.width", String(size * 1e-9))
                set("BinaryResult.PixelSize.height", String(size * 1e-9))
                set("BinaryResult.PixelUnitX", "m")
                set("BinaryResult.PixelUnitY", "m")
                set("BinaryResult.Offset.x", "0")
                set("BinaryResult.Offset.y", "0")
            }
            for key in signal.metadata.keys.sorted() { set(key, signal.metadata[key]!) }
            let json = try JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys, .prettyPrinted])
            let rows = json.count + 1
            var columns = [UInt8](repeating: 0, count: rows * n)
            for (i, byte) in json.enumerated() { for k in 0..<n { columns[i * n + k] = byte } }
            let metadataDims: [CUnsignedLongLong] = [CUnsignedLongLong(rows), CUnsignedLongLong(n)]
            try check(columns.withUnsafeBytes { hrtem_h5_write_dataset(file, base + "/Metadata", 5, 2, metadataDims, $0.baseAddress) }, base + "/Metadata")
            let display: [String: Any] = ["display": ["id": String(index), "label": signal.title], "dataPath": base]
            let displayJSON = String(decoding: try JSONSerialization.data(withJSONObject: display, options: [.sortedKeys]), as: UTF8.self)
            try check(hrtem_h5_write_string_dataset(file, "/Presentation/Displays/ImageDisplay/" + String(format: "%032x", 1000 + index), displayJSON), "an image display")
        }
    }
}

/// One signal for `writeBerkeleyEMD`: a 2-D image or a 3-D stack (C order, slowest first),
/// each axis calibrated (its `dim` vector is `origin + scale * i`).
public struct BerkeleyEMDSignal<P: StoredPixel>: Sendable {
    public var title: String
    public var planes: [Raster<P>]
    /// Per axis, slowest first (`[z,] y, x`): scale and unit.
    public var calibrations: [AxisCalibration]

    public init(title: String, planes: [Raster<P>], calibrations: [AxisCalibration]) {
        self.title = title
        self.planes = planes
        self.calibrations = calibrations
    }
}

/// Writes signals as a Berkeley EMD 0.2 file the way HyperSpy/RosettaSciIO do: root attributes
/// `version_major`/`version_minor`, `/signals/<title>` groups with `emd_group_type = 1`, `data`
/// stored transposed (x first) and `dim1..dimN` vectors with `name` and `units`. Atomic.
/// - Throws: `FormatError` naming the file.
public func writeBerkeleyEMD<P: StoredPixel>(_ signals: [BerkeleyEMDSignal<P>], to url: URL) throws {
    guard let code = hdf5ElementCode(P.pixelType) else { throw FormatError(file: url.path, "EMD cannot store \(P.pixelType) pixels") }
    for signal in signals {
        guard let first = signal.planes.first, signal.planes.allSatisfy({ $0.width == first.width && $0.height == first.height }),
              signal.calibrations.count == (signal.planes.count > 1 ? 3 : 2),
              !signal.title.isEmpty, !signal.title.contains("/") else {
            throw FormatError(file: url.path, "signal '\(signal.title)': planes of one size, one calibration per axis and a title without '/' are needed")
        }
    }
    try writeNewHDF5File(at: url) { file, check in
        try check(hrtem_h5_write_string_attribute(file, "/", "version_major", "0"), "the version")
        try check(hrtem_h5_write_string_attribute(file, "/", "version_minor", "2"), "the version")
        let signalsGroup = hrtem_h5_create_group(file, "/signals")
        guard signalsGroup >= 0 else { throw FormatError(file: url.path, "libhdf5 cannot create /signals") }
        _ = hrtem_h5_close_group(signalsGroup)
        for signal in signals {
            let base = "/signals/" + signal.title
            let group = hrtem_h5_create_group(file, base)
            guard group >= 0 else { throw FormatError(file: url.path, "libhdf5 cannot create \(base)") }
            _ = hrtem_h5_close_group(group)
            let first = signal.planes[0]
            let n = signal.planes.count, size = P.pixelType.byteCount
            let cShape = n > 1 ? [n, first.height, first.width] : [first.height, first.width]
            // Transposed: element (z, y, x) goes to stored (x, y, z).
            var stored = [UInt8](repeating: 0, count: n * first.count * size)
            for (z, plane) in signal.planes.enumerated() {
                let bytes = plane.littleEndianBytes
                for y in 0..<first.height {
                    for x in 0..<first.width {
                        let to = ((x * first.height + y) * n + z) * size
                        let from = (y * first.width + x) * size
                        for b in 0..<size { stored[to + b] = bytes[from + b] }
                    }
                }
            }
            let dims = cShape.reversed().map { CUnsignedLongLong($0) }
            try check(stored.withUnsafeBytes { hrtem_h5_write_dataset(file, base + "/data", code, Int32(dims.count), dims, $0.baseAddress) }, base + "/data")
            for (axis, calibration) in signal.calibrations.enumerated() {
                let dimPath = base + "/dim\(cShape.count - axis)"
                let offset = -calibration.origin * calibration.scale
                let vector = [offset, offset + calibration.scale]
                try check(vector.withUnsafeBytes { hrtem_h5_write_dataset(file, dimPath, 10, 1, [2], $0.baseAddress) }, dimPath)
                try check(hrtem_h5_write_string_attribute(file, dimPath, "name", ["z", "y", "x"].suffix(cShape.count)[axis + 3 - cShape.count]), dimPath)
                try check(hrtem_h5_write_string_attribute(file, dimPath, "units", calibration.unit), dimPath)
            }
            try check(hrtem_h5_write_int_attribute(file, base, "emd_group_type", 1), base)
        }
    }
}

/// Writes a new HDF5 file at `url` atomically, every libhdf5 call under the library's lock.
/// `body` gets the file and `check`, which turns a failed call's status into an error naming
/// the file and what was being written.
private func writeNewHDF5File(at url: URL, _ body: (hid_t, (Int32, String) throws -> Void) throws -> Void) throws {
    try writeFileAtomically(to: url, usingTemporaryPath: { (temporary: URL) in
        try HDF5Library.shared.run {
            let file = hrtem_h5_create_file(temporary.path)
            guard file >= 0 else { throw FormatError(file: url.path, "libhdf5 cannot create the file") }
            defer { _ = hrtem_h5_close_file(file) }
            try body(file) { status, what in
                if status < 0 { throw FormatError(file: url.path, "libhdf5 cannot write \(what)") }
            }
        }
    })
}
