import Foundation
import Micrograph
import TestSupport
import XCTest

/// `hrtem particles` end to end: the synthetic fixtures' labels against the particles their
/// generator drew, a comparison with exact counts, and the refusals.
final class ParticlesCommandTests: XCTestCase {
    private var fixtures: URL { packageRoot.appendingPathComponent("Fixtures/synthetic") }

    /// Reads `<out>/<stem>_particles.csv` into one dictionary per row.
    private func table(_ url: URL) throws -> [[String: String]] {
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
        let header = lines[0].split(separator: ",").map(String.init)
        return lines.dropFirst().map { line in
            Dictionary(uniqueKeysWithValues: zip(header, line.split(separator: ",").map(String.init)))
        }
    }

    func testFixtureLabelsGiveTheDrawnParticlesExactly() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let synthesis = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("synthesis.json"))) as! [String: Any]
        let frames = synthesis["frames"] as! [[String: Any]]
        XCTAssertEqual(frames.count, 16)
        var checkedInterior = 0
        for entry in frames.prefix(6) {
            let frame = fixtures.appendingPathComponent(entry["frame"] as! String)
            let label = fixtures.appendingPathComponent(entry["label"] as! String)
            let scale = try XCTUnwrap(readMicrographHeader(at: frame).nanometresPerPixel)
            let mask = try readLabelMask(at: label)
            let out = folder.appendingPathComponent("out")
            let run = try runHrtem(["particles", label.path, "--frame", frame.path, "--nm", "--out", out.path, "--json",
                                    "--data", folder.appendingPathComponent("data").path])
            XCTAssertEqual(run.status, 0, run.standardError)
            let summary = try JSONSerialization.jsonObject(with: Data(run.standardOutput.utf8)) as! [String: Any]
            XCTAssertEqual(summary["unit"] as? String, "nm")
            XCTAssertEqual(summary["pixelSizeNM"] as! Double, scale, accuracy: 1e-12)

            // The pixels each drawn particle covers, from the generator's own rule: the pixel
            // centre lies inside the rotated ellipse.
            var truth = [(area: Int, row: Double, column: Double, diameter: Double, interior: Bool)]()
            for particle in entry["particles"] as! [[String: Any]] {
                let cr = particle["centreRow"] as! Double, cc = particle["centreColumn"] as! Double
                let a = particle["semiMajor"] as! Double, b = particle["semiMinor"] as! Double
                let angle = particle["axisAngle"] as! Double
                var area = 0, sumRow = 0.0, sumColumn = 0.0, border = false
                for row in 0..<mask.height {
                    for column in 0..<mask.width {
                        let dx = Double(column) + 0.5 - cc, dy = Double(row) + 0.5 - cr
                        let p = dx * cos(angle) + dy * sin(angle), q = -dx * sin(angle) + dy * cos(angle)
                        guard p * p / (a * a) + q * q / (b * b) < 1 else { continue }
                        area += 1; sumRow += Double(row); sumColumn += Double(column)
                        if row == 0 || column == 0 || row == mask.height - 1 || column == mask.width - 1 { border = true }
                    }
                }
                if area > 0 {
                    truth.append((area, sumRow / Double(area), sumColumn / Double(area), 2 * (a * b).squareRoot() * scale, !border))
                }
            }
            XCTAssertEqual(summary["particles"] as? Int, truth.count, entry["frame"] as! String)
            let stem = label.deletingPathExtension().lastPathComponent
            let rows = try table(out.appendingPathComponent("\(stem)_particles.csv"))
            XCTAssertEqual(rows.count, truth.count)
            for particle in truth {
                let row = try XCTUnwrap(rows.first {
                    abs(Double($0["centroid_row_px"]!)! - particle.row) < 1e-3 && abs(Double($0["centroid_column_px"]!)! - particle.column) < 1e-3
                }, "a particle centred at (\(particle.row), \(particle.column))")
                XCTAssertEqual(Int(row["area_px"]!), particle.area)
                let equivalent = Double(row["equivalent_diameter_nm"]!)!
                XCTAssertEqual(equivalent, (4 * Double(particle.area) / Double.pi).squareRoot() * scale, accuracy: 1e-5 * equivalent)
                XCTAssertEqual(row["touches_border"], particle.interior ? "false" : "true")
                if particle.interior {
                    // The outline's pixels differ from the ellipse by less than a pixel's width.
                    XCTAssertEqual(equivalent, particle.diameter, accuracy: scale)
                    checkedInterior += 1
                }
            }
            let svg = try String(contentsOf: out.appendingPathComponent("\(stem)_histogram.svg"), encoding: .utf8)
            XCTAssertTrue(svg.contains("equivalent diameter (nm)"))
        }
        XCTAssertGreaterThan(checkedInterior, 0, "some fixture particles lie wholly inside their frame")
    }

    func testComparisonWithALabel() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        func write(_ name: String, _ rectangles: [(Int, Int, Int, Int)]) throws -> URL {
            var raster = Raster<UInt8>(width: 64, height: 64, repeating: 0)
            for (row, column, h, w) in rectangles {
                for r in row..<(row + h) { for c in column..<(column + w) { raster[r, c] = 255 } }
            }
            let url = folder.appendingPathComponent(name)
            try writePNG(gray8: raster, to: url)
            return url
        }
        let truth = try write("truth.png", [(5, 5, 10, 10), (30, 30, 10, 10), (50, 5, 6, 6)])
        // The first particle over-segmented by a one-pixel ring (IoU 100/144), the second found exactly, the third missed, one spurious.
        let predicted = try write("predicted.png", [(4, 4, 12, 12), (30, 30, 10, 10), (50, 50, 3, 3)])
        let out = folder.appendingPathComponent("out")
        let run = try runHrtem(["particles", predicted.path, "--label", truth.path, "--pixel-size", "0.5", "--out", out.path,
                                "--data", folder.appendingPathComponent("data").path])
        XCTAssertEqual(run.status, 0, run.standardError)
        XCTAssertTrue(run.standardOutput.contains("detected 2, missed 1, spurious 1, particle F1 0.6667"), run.standardOutput)
        let comparison = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("predicted_comparison.json"))) as! [String: Any]
        let d = { (area: Double) in (4 * area / Double.pi).squareRoot() * 0.5 }
        XCTAssertEqual(comparison["matchedDiameterDifference"] as! Double, (d(144) - d(100)) / 2, accuracy: 1e-9)
        XCTAssertEqual(comparison["meanDiameterDifference"] as! Double,
                       (d(144) + d(100) + d(9)) / 3 - (d(100) + d(100) + d(36)) / 3, accuracy: 1e-9)
        XCTAssertEqual(comparison["unit"] as? String, "nm")
        XCTAssertTrue(run.standardOutput.contains("Kolmogorov-Smirnov"), run.standardOutput)
    }

    func testPixelsAreNeverCalledNanometresAndBadInputIsRefused() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = ["--data", folder.appendingPathComponent("data").path]
        var raster = Raster<UInt8>(width: 32, height: 32, repeating: 0)
        for r in 4..<10 { for c in 4..<10 { raster[r, c] = 1 } }
        let mask = folder.appendingPathComponent("mask.png")
        try writePNG(gray8: raster, to: mask)

        let refused = try runHrtem(["particles", mask.path, "--nm"] + data)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.standardError.contains("no pixel size") && refused.standardError.contains("--pixel-size"), refused.standardError)

        let out = folder.appendingPathComponent("out")
        let inPixels = try runHrtem(["particles", mask.path, "--out", out.path] + data)
        XCTAssertEqual(inPixels.status, 0, inPixels.standardError)
        XCTAssertTrue(inPixels.standardError.contains("sizes are in px"), inPixels.standardError)
        XCTAssertTrue(inPixels.standardOutput.contains("1 particles") && inPixels.standardOutput.contains(" px"), inPixels.standardOutput)
        XCTAssertFalse(inPixels.standardOutput.contains("nm"), inPixels.standardOutput)
        let csv = try String(contentsOf: out.appendingPathComponent("mask_particles.csv"), encoding: .utf8)
        XCTAssertTrue(csv.contains("equivalent_diameter_px") && !csv.contains("nm"), csv)

        let empty = folder.appendingPathComponent("empty.png")
        try writePNG(gray8: Raster<UInt8>(width: 16, height: 16, repeating: 0), to: empty)
        let nothing = try runHrtem(["particles", empty.path] + data)
        XCTAssertNotEqual(nothing.status, 0)
        XCTAssertTrue(nothing.standardError.contains("no particle pixels"), nothing.standardError)

        let negative = try runHrtem(["particles", mask.path, "--pixel-size", "-1"] + data)
        XCTAssertNotEqual(negative.status, 0)
        XCTAssertTrue(negative.standardError.contains("--pixel-size"), negative.standardError)

        let missing = try runHrtem(["particles", folder.appendingPathComponent("nowhere.png").path] + data)
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.standardError.contains("nowhere.png"), missing.standardError)
    }
}
