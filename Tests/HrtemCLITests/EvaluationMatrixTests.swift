import Foundation
import Micrograph
import Segmentation
import TestSupport
import TorchArchive
import XCTest

/// `hrtem matrix --models`: published fold models scored with the matrix's cell rule, nothing
/// trained. The synthetic fixtures make two dataset versions, which go through the study's
/// HDF5 layout (export, import-h5) as the study's Dryad files would; fold models made by
/// hrtem's checkpoint writer are imported with a `model_details.csv` naming those files.
final class EvaluationMatrixTests: XCTestCase {
    var work: URL!
    var data: URL { work.appendingPathComponent("data") }

    override func setUpWithError() throws { work = try makeTemporaryFolder("hrtem-cli-evaluation-matrix") }
    override func tearDown() { try? FileManager.default.removeItem(at: work) }

    @discardableResult
    func hrtem(_ arguments: [String], expectSuccess: Bool = true) throws -> CommandResult {
        let result = try runHrtem(arguments + ["--data", data.path], in: work)
        if expectSuccess { XCTAssertEqual(result.status, 0, "hrtem \(arguments.joined(separator: " ")):\n\(result.standardError)") }
        return result
    }

    /// Two versions from the fixtures, exported in the study's layout and imported back as
    /// `h5-884` / `h5-80`; two imported fold models trained (by their details) on each.
    func prepare() throws {
        let fixtures = packageRoot.appendingPathComponent("Fixtures/synthetic")
        guard FileManager.default.fileExists(atPath: fixtures.appendingPathComponent("Dataset_metadata.csv").path) else {
            throw XCTSkip("Fixtures/synthetic is absent")
        }
        try hrtem(["import-metadata", fixtures.appendingPathComponent("Dataset_metadata.csv").path])
        try hrtem(["ingest", fixtures.path])
        var details = "Model Name,Fold,Dataset Trained On,Np Diameter (nm),Np Material,Pixel Scale (nm),Dosage (e/A2)\n"
        var checkpoints: [String] = []
        for dose in [884, 80] {
            try hrtem(["dataset", "create", "dose-\(dose)", "--where", "dose ~ \(dose) +- 20 and pixel_scale = 0.02",
                       "--patch", "32", "--stride", "32", "--min-particle-pixels", "100", "--folds", "3"])
            try hrtem(["dataset", "build", "dose-\(dose)"])
            let exported = work.appendingPathComponent("dryad-\(dose)")
            try hrtem(["dataset", "export", "dose-\(dose)", "--to", exported.path, "--format", "hdf5"])
            try hrtem(["dataset", "import-h5", "h5-\(dose)", "--images", exported.appendingPathComponent("dose-\(dose)_Images.h5").path,
                       "--labels", exported.appendingPathComponent("dose-\(dose)_Labels.h5").path, "--folds", "3"])
            for fold in 0..<2 {
                let name = "UNet_dose\(dose)_fold\(fold)_model.pt"
                let network = ResidualUNet(architecture: UNetArchitecture(widths: [2, 4], bottleneckWidth: 8), seed: UInt64(dose + fold))
                let file = work.appendingPathComponent(name)
                try TorchCheckpointWriter.write(network.stateTensors(), to: file)
                checkpoints.append(file.path)
                details += "\(name),\(fold),dose-\(dose)_Images,5,Au,0.02,\(dose)\n"
            }
        }
        let detailsFile = work.appendingPathComponent("model_details.csv")
        try Data(details.utf8).write(to: detailsFile)
        try hrtem(["model", "import"] + checkpoints + ["--details", detailsFile.path])
    }

    /// The hard Dice and patch count `hrtem evaluate` gives one model on one version: what a
    /// cell must hold.
    func evaluated(model id: String, on dataset: String, fold: Int?) throws -> (hardDice: Double, patches: Int) {
        let scope = fold.map { ["--fold", String($0)] } ?? ["--all"]
        let result = try hrtem(["evaluate", data.appendingPathComponent("models/\(id)").path, dataset, "--no-dihedral", "--json"] + scope)
        let metrics = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        return (try XCTUnwrap(metrics["hardDice"] as? Double), try XCTUnwrap(metrics["patches"] as? Int))
    }

    func testImportedModelsScoredWithTheCellRuleWithoutTraining() throws {
        try prepare()
        let arguments = ["matrix", "--models", "imported", "--datasets", "h5-884,h5-80", "--no-dihedral", "--threads", "1",
                         "--jobs", "2", "--name", "published", "--out", "report"]
        let run = try hrtem(arguments)
        // The models' <Name>_Images.h5 are the versions' sources: each row is its own column.
        XCTAssertTrue(run.standardError.contains("row h5-884: 2 model(s), its own test folds"), run.standardError)
        XCTAssertTrue(run.standardError.contains("row h5-80: 2 model(s), its own test folds"), run.standardError)
        XCTAssertTrue(run.standardError.contains(": 0 training + 8 evaluation units"), run.standardError)
        XCTAssertFalse(run.standardError.contains("ran: train"), run.standardError)
        XCTAssertEqual(run.standardError.components(separatedBy: "] ran: evaluate").count - 1, 8)
        let models = try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("models").path)
        XCTAssertEqual(Set(models), ["UNet_dose884_fold0_model", "UNet_dose884_fold1_model", "UNet_dose80_fold0_model", "UNet_dose80_fold1_model"])

        let report = work.appendingPathComponent("report")
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: report.appendingPathComponent("matrix.json"))) as? [String: Any])
        XCTAssertEqual(json["kind"] as? String, "evaluation")
        XCTAssertEqual(json["complete"] as? Bool, true)
        let cells = try XCTUnwrap(json["cells"] as? [[String: Any]])
        XCTAssertEqual(cells.count, 4)
        for cell in cells {
            let trainedOn = try XCTUnwrap(cell["trainedOn"] as? String), testedOn = try XCTUnwrap(cell["testedOn"] as? String)
            let diagonal = trainedOn == testedOn
            XCTAssertEqual(cell["scope"] as? String, diagonal ? "own test fold" : "whole dataset")
            let folds = try XCTUnwrap(cell["folds"] as? [[String: Any]])
            XCTAssertEqual(folds.map { $0["fold"] as? Int }, [0, 1])
            for fold in folds {
                let model = try XCTUnwrap(fold["modelID"] as? String), number = try XCTUnwrap(fold["fold"] as? Int)
                XCTAssertTrue(model.hasPrefix("UNet_dose\(trainedOn.dropFirst(3))_fold\(number)"), "\(model) in row \(trainedOn)")
                let metrics = try XCTUnwrap(fold["metrics"] as? [String: Any])
                let expected = try evaluated(model: model, on: testedOn, fold: diagonal ? number : nil)
                XCTAssertEqual(metrics["hardDice"] as? Double, expected.hardDice, "\(model) on \(testedOn)")
                XCTAssertEqual(metrics["patches"] as? Int, expected.patches, "\(model) on \(testedOn)")
                if diagonal {
                    // The held-out fold only, not the whole version.
                    XCTAssertLessThan(expected.patches, try evaluated(model: model, on: testedOn, fold: nil).patches)
                }
            }
        }
        let html = try String(contentsOf: report.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("Generalization matrix of existing models: published"))
        XCTAssertTrue(html.contains("nothing was trained"))
        let csv = try String(contentsOf: report.appendingPathComponent("matrix.csv"), encoding: .utf8)

        // A rerun evaluates nothing again and writes the same numbers.
        let again = try hrtem(arguments)
        XCTAssertFalse(again.standardError.contains("] ran: "), again.standardError)
        XCTAssertEqual(try String(contentsOf: report.appendingPathComponent("matrix.csv"), encoding: .utf8), csv)

        // The same plan as Slurm arrays: no training array; its tasks and `collect` give the
        // local run's numbers (each task run here by `run-unit`, as an array task would).
        let slurm = work.appendingPathComponent("slurm")
        let emitted = try hrtem(arguments.filter { !["--jobs", "2"].contains($0) }.dropLast(2) + ["--emit-slurm", slurm.path])
        XCTAssertTrue(emitted.standardOutput.contains("0 training units, 8 evaluation units"), emitted.standardOutput)
        XCTAssertFalse(FileManager.default.fileExists(atPath: slurm.appendingPathComponent("train.sbatch").path))
        let submit = try String(contentsOf: slurm.appendingPathComponent("submit.sh"), encoding: .utf8)
        XCTAssertFalse(submit.contains("train.sbatch"), submit)
        XCTAssertTrue(submit.contains("evaluate 0-7"), submit)
        for script in ["evaluate.sbatch", "collect.sbatch", "submit.sh"] {
            let check = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-n", slurm.appendingPathComponent(script).path])
            XCTAssertEqual(check.status, 0, "bash -n \(script): \(check.standardError)")
        }
        let plan = slurm.appendingPathComponent("plan.json").path, results = work.appendingPathComponent("task-results").path
        for unit in 0..<8 {
            let task = try hrtem(["matrix", "run-unit", "--plan", plan, "--unit", String(unit), "--results", results])
            XCTAssertTrue(task.standardOutput.contains("ran"), task.standardOutput)
        }
        try hrtem(["matrix", "collect", "--plan", plan, "--results", results, "--out", work.appendingPathComponent("collected").path])
        XCTAssertEqual(try String(contentsOf: work.appendingPathComponent("collected/matrix.csv"), encoding: .utf8), csv)
    }

    func testSelectionsAndRowsWithoutTheirData() throws {
        try prepare()
        // Models whose training data is not among the columns: a row of their own, no diagonal,
        // named by the publisher's dataset and described by its facts.
        let run = try hrtem(["matrix", "--models", "UNet_dose884*", "--datasets", "h5-80", "--no-dihedral", "--threads", "1",
                             "--out", "alone"])
        XCTAssertTrue(run.standardError.contains("row dose-884: 2 model(s), no diagonal"), run.standardError)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: work.appendingPathComponent("alone/matrix.json"))) as? [String: Any])
        let datasets = try XCTUnwrap(json["datasets"] as? [[String: Any]])
        XCTAssertEqual(datasets.first?["id"] as? String, "study:dose-884_Images")
        XCTAssertTrue((datasets.first?["metadata"] as? [[String: String]] ?? []).contains(["key": "dose", "value": "884 e/Å²"]))

        // --match says which column is a row's data, whatever the files were called.
        let matched = try hrtem(["matrix", "--models", "trained-on:study:dose-884*", "--datasets", "dose-884",
                                 "--match", "dose-884_Images=dose-884", "--no-dihedral", "--threads", "1", "--out", "matched"])
        XCTAssertTrue(matched.standardError.contains("row dose-884: 2 model(s), its own test folds"), matched.standardError)

        let unknown = try hrtem(["matrix", "--models", "imported,nosuch*", "--datasets", "h5-80"], expectSuccess: false)
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.standardError.contains("--models term \"nosuch*\": matches none of the catalog's 4 models"), unknown.standardError)
        let badMatch = try hrtem(["matrix", "--models", "imported", "--datasets", "h5-80", "--match", "elsewhere=h5-80"], expectSuccess: false)
        XCTAssertTrue(badMatch.standardError.contains("--match elsewhere=h5-80: names no training dataset"), badMatch.standardError)
    }
}
