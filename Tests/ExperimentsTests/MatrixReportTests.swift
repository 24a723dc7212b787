import Experiments
import Foundation
import Segmentation
import TestSupport
import XCTest

final class MatrixReportTests: XCTestCase {
    var folders: [URL] = []
    override func tearDown() { for folder in folders { try? FileManager.default.removeItem(at: folder) } }

    func finishedResults(_ plan: MatrixPlan) throws -> MatrixResults {
        let folder = try temporaryFolder()
        folders.append(folder)
        let store = JSONResultStore(folder: folder.appendingPathComponent("results"))
        try MatrixRunner(plan: plan, executor: SimulatedExecutor(), store: store, jobs: 2).run()
        return try MatrixResults(plan: plan, store: store)
    }

    func testReportFilesParseBackToTheResults() throws {
        let plan = try samplePlan()
        let results = try finishedResults(plan)
        let folder = try temporaryFolder()
        folders.append(folder)
        let written = try MatrixReport.write(results, to: folder, planFile: URL(fileURLWithPath: "/shared/run/plan.json"))
        XCTAssertEqual(written.filter { $0.path.contains("/cells/") }.count, 9)

        let document = try JSONDecoder().decode(ReportDocument.self, from: Data(contentsOf: folder.appendingPathComponent("matrix.json")))
        XCTAssertTrue(document.complete)
        XCTAssertEqual(document.cells.count, 9)
        XCTAssertEqual(document.models.count, 15)
        for (cell, result) in zip(document.cells, results.cells) {
            XCTAssertEqual(cell.hardDice, result.hardDice)
            XCTAssertEqual(cell.falseNegativeRate, result.falseNegativeRate)
            XCTAssertEqual(cell.folds.count, 5)
        }

        let rows = parseCSV(try String(contentsOf: folder.appendingPathComponent("matrix.csv"), encoding: .utf8))
        XCTAssertEqual(rows.first?.prefix(3), ["trained_on", "trained_on_version", "tested_on"])
        XCTAssertEqual(rows.count, 1 + 9)
        let header = rows[0]
        for (row, cell) in zip(rows.dropFirst(), results.cells) {
            XCTAssertEqual(row.count, header.count)
            let field = { (name: String) in row[header.firstIndex(of: name)!] }
            XCTAssertEqual(Double(field("hard_dice_mean")), cell.hardDice?.mean, "CSV numbers read back exactly")
            XCTAssertEqual(Double(field("hard_dice_std")), cell.hardDice?.std)
            XCTAssertEqual(field("hard_dice_per_fold").split(separator: ";").compactMap { Double($0) }, cell.hardDice?.values)
        }
        XCTAssertEqual(rows[7][0], "Au <5nm> & \"friends\"", "a name with a quote survives CSV quoting")

        let cellFile = folder.appendingPathComponent("cells/Au-2.2nm-884e__on__Au-2.2nm-80e.csv")
        let cellRows = parseCSV(try String(contentsOf: cellFile, encoding: .utf8))
        XCTAssertEqual(cellRows[0], ["fold", "test_loss", "test_dice", "test_hard_dice"])
        XCTAssertEqual(cellRows.dropFirst().map { $0[0] }, ["0", "1", "2", "3", "4"])
        let offDiagonal = try XCTUnwrap(results.cell(train: "aaaa0001", test: "bbbb0002"))
        XCTAssertEqual(cellRows.dropFirst().compactMap { Double($0[3]) }, offDiagonal.hardDice?.values)

        for name in ["heatmap.svg", "segmentation-bias.svg"] {
            let svg = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
            assertWellFormedXML(svg, name)
        }
        let heatmap = try String(contentsOf: folder.appendingPathComponent("heatmap.svg"), encoding: .utf8)
        let diagonal = try XCTUnwrap(results.cell(train: "aaaa0001", test: "aaaa0001")?.hardDice)
        XCTAssertTrue(heatmap.contains(String(format: "%.3f ± %.3f", diagonal.mean, diagonal.std)), "mean ± std in the cell")
        XCTAssertTrue(heatmap.contains("Au &lt;5nm&gt; &amp; &quot;friends&quot;"), "names are escaped")
        XCTAssertTrue(heatmap.contains("dose: 884 e/Å²"), "key metadata on the axes")
        XCTAssertTrue(heatmap.contains("linearGradient"), "a colour scale legend")
    }

    func testHTMLReportIsSelfContained() throws {
        let plan = try samplePlan(folds: 2)
        var results = try finishedResults(plan)
        // A tiny PNG overlay from "the evaluator", and a recipe in a dataset folder.
        let folder = try temporaryFolder()
        folders.append(folder)
        let png = folder.appendingPathComponent("overlay.png")
        let pngBytes = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3])
        try pngBytes.write(to: png)
        results.cells[0].folds[0].sampleOverlays = [png.path]
        let datasetFolder = folder.appendingPathComponent("dataset")
        try FileManager.default.createDirectory(at: datasetFolder, withIntermediateDirectories: true)
        try Data("{\"query\": \"dose ~ 884 +- 20 and <script>\"}".utf8).write(to: datasetFolder.appendingPathComponent("recipe.json"))
        results.plan.datasets[0].folder = datasetFolder.path

        let html = MatrixReport.html(results, planFile: URL(fileURLWithPath: "/shared/my run/plan.json"))
        XCTAssertTrue(html.contains("<svg"))
        XCTAssertTrue(html.contains("data:image/png;base64,\(pngBytes.base64EncodedString())"))
        XCTAssertTrue(html.contains("dose ~ 884 +- 20 and &lt;script&gt;"), "recipe is shown, escaped")
        XCTAssertTrue(html.contains("hrtem matrix collect --plan &#39;/shared/my run/plan.json&#39;"))
        XCTAssertTrue(html.contains("hrtem matrix --datasets a,b,c"))
        XCTAssertTrue(html.contains("simulated executor"), "simulated numbers are flagged")
        for external in ["src=\"http", "href=\"http", "<link", "<script", "@import", "url(http"] {
            XCTAssertFalse(html.contains(external), "report.html must need no network: found \(external)")
        }
    }

    func testPendingCellsAreShownAsSuch() throws {
        let plan = try samplePlan(folds: 2)
        let folder = try temporaryFolder()
        folders.append(folder)
        let store = JSONResultStore(folder: folder)
        let runner = MatrixRunner(plan: plan, executor: SimulatedExecutor(), store: store)
        for index in 0..<(plan.trainUnits.count + 3) { try runner.runUnit(at: index) }
        let results = try MatrixResults(plan: plan, store: store)
        XCTAssertFalse(results.isComplete)
        XCTAssertEqual(results.missingUnits, plan.evaluationUnits.count - 3)
        let svg = MatrixReport.heatmapSVG(results)
        assertWellFormedXML(svg, "partial heatmap")
        XCTAssertTrue(svg.contains("pending"))
        XCTAssertTrue(MatrixReport.html(results).contains("Incomplete"))
    }

    func testSweepReport() throws {
        let datasets = sampleDatasets()
        let plan = try NoiseSweep.plan(name: "noise", train: datasets[0], test: [datasets[0], datasets[1]],
                                       levels: [0, 0.4, 0.8], mode: .fixed, base: TrainingSettings(epochs: 2), folds: 3,
                                       executor: .simulated)
        let results = try finishedResults(plan)
        let folder = try temporaryFolder()
        folders.append(folder)
        try MatrixReport.write(results, to: folder)
        let rows = parseCSV(try String(contentsOf: folder.appendingPathComponent("sweep.csv"), encoding: .utf8))
        XCTAssertEqual(rows[0], SweepReport.csvHeader)
        XCTAssertEqual(rows.count, 1 + 3 * 2)
        XCTAssertEqual(rows.dropFirst().map { $0[0] }, ["0.0", "0.0", "0.4", "0.4", "0.8", "0.8"])
        XCTAssertEqual(rows.dropFirst().map { $0[4] }, ["own test fold", "whole dataset", "own test fold", "whole dataset",
                                                        "own test fold", "whole dataset"])
        let svg = try String(contentsOf: folder.appendingPathComponent("sweep.svg"), encoding: .utf8)
        assertWellFormedXML(svg, "sweep.svg")
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 2, "one line per test dataset")
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 6)
        let heatmap = try String(contentsOf: folder.appendingPathComponent("heatmap.svg"), encoding: .utf8)
        XCTAssertTrue(heatmap.contains("rho=0.4"), "sweep rows are labelled by level")
    }

    func testSameResultsGiveTheSameBytes() throws {
        let plan = try samplePlan(folds: 2)
        let results = try finishedResults(plan)
        let first = try temporaryFolder(), second = try temporaryFolder()
        folders += [first, second]
        let files = try MatrixReport.write(results, to: first)
        try MatrixReport.write(try finishedResults(plan), to: second)
        for file in files {
            let twin = second.appendingPathComponent(String(file.path.dropFirst(first.path.count + 1)))
            XCTAssertEqual(try Data(contentsOf: file), try Data(contentsOf: twin), file.lastPathComponent)
        }
    }
}
