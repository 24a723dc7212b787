import Foundation
import Micrograph
import TestSupport
import XCTest

/// COCO segmentations become the masks pycocotools makes, pixel for pixel.
final class COCOMaskTests: XCTestCase {
    /// A COCO file of `count` images exercising every segmentation form: random polygons
    /// (vertices outside the image, on its border, repeated, self-crossing, several per
    /// annotation), whole-image rectangles, and compressed and uncompressed RLE masks with holes.
    static func writeCOCO(to url: URL, images count: Int, seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * random.nextUnitDouble() }
        var images = [[String: Any]](), annotations = [[String: Any]]()
        for index in 0..<count {
            let width = 5 + Int(random.next() % 60), height = 5 + Int(random.next() % 60)
            let w = Double(width), h = Double(height)
            images.append(["id": index + 1, "file_name": "frame_\(index).tif", "height": height, "width": width])
            var segmentations = [Any]()
            switch index % 6 {
            case 0, 1:
                // Random polygons, some vertices outside the image, coordinates snapped now and then.
                let polygons = (0..<(1 + Int(random.next() % 3))).map { _ -> [Double] in
                    (0..<(3 + Int(random.next() % 9))).flatMap { _ -> [Double] in
                        var x = uniform(-3, w + 3), y = uniform(-3, h + 3)
                        if random.next() % 3 == 0 { x = x.rounded(); y = (y * 2).rounded() / 2 }
                        return [x, y]
                    }
                }
                segmentations.append(polygons)
            case 2:
                // Border-touching rectangles and repeated vertices.
                segmentations.append([[0, 0, w, 0, w, h, 0, h]])
                segmentations.append([[0, 0, w - 1, 0, w - 1, h - 1, 0, h - 1], [2, 2, 2, 2, w / 2, 2, w / 2, h / 2, 2, h / 2]])
            case 3:
                // A self-crossing bow tie and a thin sliver along the right border.
                segmentations.append([[1, 1, w - 2, h - 2, w - 2, 1, 1, h - 2]])
                segmentations.append([[w - 0.6, 0, w, 0, w, h, w - 0.6, h]])
            default:
                // A ring (a mask with a hole) as RLE, compressed or not.
                var ring = Raster(width: width, height: height, repeating: UInt8(0))
                for y in 0..<height {
                    for x in 0..<width {
                        let dx = Double(x) - w / 2, dy = Double(y) - h / 2
                        let r = (dx * dx + dy * dy).squareRoot()
                        if r < min(w, h) / 2.2 && r > min(w, h) / 5 { ring[y, x] = 1 }
                    }
                }
                let rle = COCOMask.RunLengths(ring)
                if index % 6 == 4 {
                    segmentations.append(["size": [height, width], "counts": COCOMask.encodeCounts(rle)])
                } else {
                    segmentations.append(["size": [height, width], "counts": rle.counts])
                }
            }
            for segmentation in segmentations {
                annotations.append(["id": annotations.count + 1, "image_id": index + 1, "category_id": 1 + annotations.count % 2,
                                    "iscrowd": segmentation is [String: Any] ? 1 : 0, "segmentation": segmentation])
            }
        }
        let object: [String: Any] = ["images": images, "annotations": annotations,
                                     "categories": [["id": 1, "name": "particle"], ["id": 2, "name": "other"]]]
        try writeFileAtomically(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), to: url)
    }

    func testCountsStringsRoundTrip() throws {
        var random = SplitMix64(seed: 77)
        for _ in 0..<200 {
            let width = 1 + Int(random.next() % 40), height = 1 + Int(random.next() % 40)
            let mask = Raster(width: width, height: height, pixels: (0..<(width * height)).map { _ in UInt8(random.next() % 5 == 0 ? 1 : 0) })
            let rle = COCOMask.RunLengths(mask)
            let decoded = try COCOMask.decodeCounts(COCOMask.encodeCounts(rle), height: height, width: width)
            XCTAssertEqual(decoded, rle)
            XCTAssertEqual(try decoded.raster(), mask)
        }
        XCTAssertThrowsError(try COCOMask.decodeCounts("12", height: 3, width: 3).raster(source: "x.json")) { error in
            XCTAssertTrue("\(error)".contains("x.json") && "\(error)".contains("add up to"), "\(error)")
        }
        // Absurd runs and far-away vertices end in errors, not in a hang or a trap.
        XCTAssertThrowsError(try COCOMask.RunLengths(height: 3, width: 3, counts: [Int.max, Int.max, 2]).raster(source: "x.json"))
        XCTAssertThrowsError(try COCOMask.mask(segmentation: [[0, 0, 1e300, 0, 5, 5]], height: 4, width: 4, source: "x.json")) { error in
            XCTAssertTrue("\(error)".contains("x.json") && "\(error)".contains("polygon coordinate"), "\(error)")
        }
        XCTAssertThrowsError(try COCOMask.decodeCounts("\u{7F}", height: 3, width: 3, source: "x.json")) { error in
            XCTAssertEqual((error as? FormatError)?.offset, 0)
        }
    }

    func testMasksMatchPycocotoolsPixelForPixel() throws {
        guard pythonCanImport("pycocotools") else {
            throw XCTSkip("pycocotools is not installed for \(peerPython) (run `make peers`): COCO parity skipped")
        }
        let folder = try makeTemporaryFolder("hrtem-coco")
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("instances.json")
        try COCOMaskTests.writeCOCO(to: url, images: 120, seed: 2023)
        let script = packageRoot.appendingPathComponent("Benchmarks/peers/coco_pycocotools.py")
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [peerPython, script.path, url.path])
        XCTAssertEqual(result.status, 0, result.standardError)
        let coco = try COCOAnnotations(contentsOf: url)
        var compared = 0, nonEmpty = 0, partial = 0
        for line in result.standardOutput.split(separator: "\n") where line.hasPrefix("{") {
            let peer = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let name = peer["file_name"] as! String
            let image = try XCTUnwrap(coco.image(named: name))
            let mask = try coco.mask(for: image)
            XCTAssertEqual(mask.pixels.reduce(0) { $0 + Int($1) }, peer["pixels"] as? Int, name)
            XCTAssertEqual(sha256Hex(mask.pixels), peer["sha256"] as? String, "\(name) differs from pycocotools")
            compared += 1
            let inside = mask.pixels.reduce(0) { $0 + Int($1) }
            if inside > 0 { nonEmpty += 1 }
            if inside > 0 && inside < mask.count { partial += 1 }
        }
        XCTAssertEqual(compared, 120)
        XCTAssertGreaterThan(nonEmpty, 110, "the cases must draw something")
        XCTAssertGreaterThan(partial, 90, "most masks must have edges to get right")
    }
}
