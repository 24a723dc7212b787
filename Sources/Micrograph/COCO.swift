import Foundation

/// COCO segmentations (polygons, compressed and uncompressed run-length encodings) turned into
/// masks pixel for pixel as pycocotools' `annToMask` makes them.
///
/// Run lengths are column-major (x slowest, y fastest) and start with a run of background.
/// Polygons are rasterized the way pycocotools' mask API does it: vertices are scaled by 5 and
/// rounded, the edges walked densely on that grid, the crossings of each pixel column's centre
/// line kept and turned into run lengths; an annotation's polygons (or RLEs) are united.
public enum COCOMask {
    /// A column-major run-length mask.
    public struct RunLengths: Sendable, Equatable {
        public var height: Int
        public var width: Int
        public var counts: [Int]

        public init(height: Int, width: Int, counts: [Int]) {
            self.height = height
            self.width = width
            self.counts = counts
        }

        /// The mask row-major, 1 inside.
        /// - Throws: `FormatError` (file = `source`) when the runs do not cover the image exactly.
        public func raster(source: String = "COCO") throws -> Raster<UInt8> {
            let total = height * width
            var sum = 0
            for count in counts {
                guard count >= 0, count <= total - sum else {
                    throw FormatError(file: source, "run lengths add up to more than the image's \(height) x \(width) = \(total) pixels (or a run is negative)")
                }
                sum += count
            }
            guard sum == total else {
                throw FormatError(file: source, "run lengths add up to \(sum), the image has \(height) x \(width) = \(total) pixels")
            }
            var out = [UInt8](repeating: 0, count: total)
            var index = 0
            for (run, length) in counts.enumerated() {
                if run % 2 == 1 {
                    for i in index..<(index + length) { out[(i % height) * width + i / height] = 1 }
                }
                index += length
            }
            return Raster(width: width, height: height, pixels: out)
        }

        /// The run lengths of a row-major 0/1 (any non-zero) mask.
        public init(_ mask: Raster<UInt8>) {
            height = mask.height
            width = mask.width
            var counts = [Int]()
            var current: UInt8 = 0, length = 0
            for x in 0..<mask.width {
                for y in 0..<mask.height {
                    let value: UInt8 = mask.pixels[y * mask.width + x] != 0 ? 1 : 0
                    if value != current { counts.append(length); length = 0; current = value }
                    length += 1
                }
            }
            counts.append(length)
            self.counts = counts
        }
    }

    /// Decodes pycocotools' compressed counts string (6-bit groups offset by 48, later counts
    /// stored as differences from the count two before).
    /// - Throws: `FormatError` (file = `source`) naming the character where it is malformed.
    public static func decodeCounts(_ text: String, height: Int, width: Int, source: String = "COCO") throws -> RunLengths {
        let bytes = Array(text.utf8)
        var counts = [Int]()
        var at = 0
        while at < bytes.count {
            var value = 0, shift = 0, more = true
            while more {
                guard at < bytes.count else { throw FormatError(file: source, offset: at, "RLE counts string ends inside a number") }
                let c = Int(bytes[at]) - 48
                guard c >= 0, c < 64, shift < 60 else { throw FormatError(file: source, offset: at, "bad character in RLE counts string") }
                value |= (c & 0x1F) << shift
                more = c & 0x20 != 0
                at += 1
                shift += 5
                if !more, c & 0x10 != 0 { value |= -1 << shift }
            }
            if counts.count > 2 {
                let (sum, overflow) = value.addingReportingOverflow(counts[counts.count - 2])
                guard !overflow else { throw FormatError(file: source, offset: at - 1, "RLE count overflows") }
                value = sum
            }
            counts.append(value)
        }
        return RunLengths(height: height, width: width, counts: counts)
    }

    /// pycocotools' compressed counts string for run lengths.
    public static func encodeCounts(_ rle: RunLengths) -> String {
        var out = [UInt8]()
        for (i, count) in rle.counts.enumerated() {
            var x = count
            if i > 2 { x -= rle.counts[i - 2] }
            var more = true
            while more {
                var c = x & 0x1F
                x >>= 5
                more = c & 0x10 != 0 ? x != -1 : x != 0
                if more { c |= 0x20 }
                out.append(UInt8(c + 48))
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// C's `(int)` of a double on x86-64: truncation, and INT_MIN for NaN and out-of-range
    /// values (pycocotools meets 0/0 on repeated vertices).
    static func cInt(_ value: Double) -> Int {
        guard value.isFinite, value > -2_147_483_649, value < 2_147_483_648 else { return Int(Int32.min) }
        return Int(value.rounded(.towardZero))
    }

    /// The run lengths of one polygon `[x0, y0, x1, y1, ...]` in an image of `height` x `width`.
    public static func polygon(_ xy: [Double], height: Int, width: Int) -> RunLengths {
        let k = xy.count / 2
        let scale = 5.0
        guard k >= 1 else { return RunLengths(height: height, width: width, counts: [height * width]) }
        var x = [Int](repeating: 0, count: k + 1), y = [Int](repeating: 0, count: k + 1)
        for j in 0..<k {
            x[j] = cInt(scale * xy[2 * j] + 0.5)
            y[j] = cInt(scale * xy[2 * j + 1] + 0.5)
        }
        x[k] = x[0]
        y[k] = y[0]
        // Every grid point along the edges.
        var u = [Int](), v = [Int]()
        for j in 0..<k {
            var xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1]
            let dx = abs(xe - xs), dy = abs(ys - ye)
            let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye)
            if flip { swap(&xs, &xe); swap(&ys, &ye) }
            let slope = dx >= dy ? Double(ye - ys) / Double(dx) : Double(xe - xs) / Double(dy)
            if dx >= dy {
                for d in 0...dx {
                    let t = flip ? dx - d : d
                    u.append(t + xs)
                    v.append(cInt(Double(ys) + slope * Double(t) + 0.5))
                }
            } else {
                for d in 0...dy {
                    let t = flip ? dy - d : d
                    v.append(t + ys)
                    u.append(cInt(Double(xs) + slope * Double(t) + 0.5))
                }
            }
        }
        // Where the boundary crosses each pixel column's centre, back on the pixel grid.
        var bx = [Int](), by = [Int]()
        for j in 1..<max(u.count, 1) where u[j] != u[j - 1] {
            var xd = Double(u[j] < u[j - 1] ? u[j] : u[j] - 1)
            xd = (xd + 0.5) / scale - 0.5
            if xd.rounded(.down) != xd || xd < 0 || xd > Double(width - 1) { continue }
            var yd = Double(v[j] < v[j - 1] ? v[j] : v[j - 1])
            yd = (yd + 0.5) / scale - 0.5
            if yd < 0 { yd = 0 } else if yd > Double(height) { yd = Double(height) }
            yd = yd.rounded(.up)
            bx.append(Int(xd))
            by.append(Int(yd))
        }
        // Sorted crossing positions (column-major) become alternating runs.
        var a = zip(bx, by).map { UInt32(truncatingIfNeeded: $0 * height + $1) }
        a.append(UInt32(truncatingIfNeeded: height * width))
        a.sort()
        var previous: UInt32 = 0
        for j in a.indices {
            let t = a[j]
            a[j] = t &- previous
            previous = t
        }
        var b = [Int]()
        var j = 0
        b.append(Int(a[0]))
        j = 1
        while j < a.count {
            if a[j] > 0 {
                b.append(Int(a[j]))
                j += 1
            } else {
                j += 1
                if j < a.count { b[b.count - 1] += Int(a[j]); j += 1 }
            }
        }
        return RunLengths(height: height, width: width, counts: b)
    }

    /// One annotation's `segmentation` (a list of polygons, or an RLE object with `counts` as a
    /// string or a list) as a 0/1 mask of `height` x `width`.
    /// - Throws: `FormatError` (file = `source`) for a segmentation of another shape.
    public static func mask(segmentation: Any, height: Int, width: Int, source: String) throws -> Raster<UInt8> {
        if let polygons = segmentation as? [[Any]] {
            var union = Raster(width: width, height: height, repeating: UInt8(0))
            for polygon in polygons {
                // Far-away vertices would make the edge walk (on a 5x grid) take forever.
                let limit = 16 * Double(height + width) + 1024
                let coordinates = try polygon.map { value -> Double in
                    guard let number = value as? NSNumber, number.doubleValue.isFinite, abs(number.doubleValue) <= limit else {
                        throw FormatError(file: source, "a polygon coordinate must be a number within \(Int(limit)) of an image of \(height) x \(width), found \(value)")
                    }
                    return number.doubleValue
                }
                let part = try COCOMask.polygon(coordinates, height: height, width: width).raster(source: source)
                for i in 0..<union.count where part.pixels[i] != 0 { union.pixels[i] = 1 }
            }
            return union
        }
        if let rle = segmentation as? [String: Any] {
            let size = (rle["size"] as? [NSNumber])?.map(\.intValue) ?? [height, width]
            guard size.count == 2, size[0] == height, size[1] == width else {
                throw FormatError(file: source, "RLE size \(size) differs from the image's \(height) x \(width)")
            }
            if let text = rle["counts"] as? String {
                return try decodeCounts(text, height: height, width: width, source: source).raster(source: source)
            }
            if let list = rle["counts"] as? [NSNumber] {
                return try RunLengths(height: height, width: width, counts: list.map(\.intValue)).raster(source: source)
            }
            throw FormatError(file: source, "RLE counts must be a string or a list of numbers")
        }
        throw FormatError(file: source, "a segmentation must be a list of polygons or an RLE object")
    }
}

/// A COCO annotation file: its images and, per image, the union of the annotations chosen.
public struct COCOAnnotations: Sendable {
    public struct Image: Sendable {
        public var id: Int
        public var fileName: String
        public var height: Int
        public var width: Int
    }

    public let file: String
    public let images: [Image]
    /// Annotations by image id: (category id, segmentation as JSON data).
    let annotations: [Int: [(category: Int, id: Int, segmentation: Data)]]

    /// Reads `images` and `annotations` of a COCO JSON file.
    /// - Throws: `FormatError` naming the file (and the annotation) when it is not COCO.
    public init(contentsOf url: URL) throws {
        file = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw FormatError(file: url.path, "cannot read: \(error.localizedDescription)") }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw FormatError(file: url.path, "not JSON: \(error.localizedDescription)")
        }
        guard let root = object as? [String: Any], let images = root["images"] as? [[String: Any]],
              let annotations = root["annotations"] as? [[String: Any]] else {
            throw FormatError(file: url.path, "not a COCO annotation file (needs \"images\" and \"annotations\" lists)")
        }
        var parsed = [Image]()
        for (index, image) in images.enumerated() {
            guard let id = (image["id"] as? NSNumber)?.intValue, let name = image["file_name"] as? String,
                  let height = (image["height"] as? NSNumber)?.intValue, let width = (image["width"] as? NSNumber)?.intValue,
                  height >= 1, width >= 1, height <= 1 << 16, width <= 1 << 16, height * width <= 1 << 28 else {
                throw FormatError(file: url.path, "images[\(index)] needs id, file_name, height and width (1 to 65536, at most 2^28 pixels)")
            }
            parsed.append(Image(id: id, fileName: name, height: height, width: width))
        }
        var byImage = [Int: [(Int, Int, Data)]]()
        for (index, annotation) in annotations.enumerated() {
            guard let image = (annotation["image_id"] as? NSNumber)?.intValue, let segmentation = annotation["segmentation"] else {
                throw FormatError(file: url.path, "annotations[\(index)] needs image_id and segmentation")
            }
            let category = (annotation["category_id"] as? NSNumber)?.intValue ?? 0
            let id = (annotation["id"] as? NSNumber)?.intValue ?? index
            let json = (try? JSONSerialization.data(withJSONObject: ["s": segmentation])) ?? Data()
            byImage[image, default: []].append((category, id, json))
        }
        self.images = parsed
        self.annotations = byImage.mapValues { $0.map { (category: $0.0, id: $0.1, segmentation: $0.2) } }
    }

    /// The image whose `file_name` (or its last path component) is `name`.
    public func image(named name: String) -> Image? {
        images.first { $0.fileName == name } ?? images.first { URL(fileURLWithPath: $0.fileName).lastPathComponent == name }
    }

    /// The union of the image's annotations (of `categories` only, when given), 1 inside.
    /// - Throws: `FormatError` naming the file and the annotation id when one is malformed.
    public func mask(for image: Image, categories: Set<Int>? = nil) throws -> Raster<UInt8> {
        var union = Raster(width: image.width, height: image.height, repeating: UInt8(0))
        for annotation in annotations[image.id] ?? [] where categories?.contains(annotation.category) ?? true {
            let wrapped = try JSONSerialization.jsonObject(with: annotation.segmentation) as! [String: Any]
            let part: Raster<UInt8>
            do {
                part = try COCOMask.mask(segmentation: wrapped["s"]!, height: image.height, width: image.width, source: file)
            } catch let error as FormatError {
                throw FormatError(file: file, "annotation \(annotation.id) of image '\(image.fileName)': \(error.message)")
            }
            for i in 0..<union.count where part.pixels[i] != 0 { union.pixels[i] = 1 }
        }
        return union
    }
}
