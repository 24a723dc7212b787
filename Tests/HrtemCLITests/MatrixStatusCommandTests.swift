import Foundation
import Micrograph
import Preprocessing
import TestSupport
import XCTest

/// `hrtem matrix status` and `hrtem matrix resubmit --dry-run` from plan files alone (no Slurm):
/// units run by hand with `run-unit`, one made to fail by a file where its model folder must go.
final class MatrixStatusCommandTests: XCTestCase {
    var folder: URL!
    override func setUpWithError() throws { folder = try makeTemporaryFolder("hrtem-matrix-status") }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    func read(_ url: URL) throws -> String { try String(contentsOf: url, encoding: .utf8) }

    func testStatusFollowsUnitsThroughFailureAndRepair() throws {
        let data = folder.appendingPathComponent("data"), slurm = folder.appendingPathComponent("slurm run")
        for (name, dose) in [("dose-884", 884), ("dose-80", 80)] {
            let version = data.appendingPathComponent("datasets/\(name)/v\(dose)abc")
            try writeVersionRecipe(at: version, name: name, versionId: "v\(dose)abc", query: "dose ~ \(dose) +- 20", folds: 2)
            try writeFileAtomically(studyFolds(count: 6, k: 2).jsonBytes(), to: version.appendingPathComponent("folds.json"))
        }
        let emitted = try runHrtem(["matrix", "--data", data.path, "--datasets", "dose-884,dose-80", "--folds", "2", "--epochs", "1",
                                    "--executor", "simulated", "--emit-slurm", slurm.path, "--slurm-max-tasks", "3"])
        XCTAssertEqual(emitted.status, 0, emitted.standardError)
        let plan = slurm.appendingPathComponent("plan.json")
        func hrtem(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
            try runHrtem(arguments + ["--data", data.path], environment: environment)
        }
        func status(_ extra: [String] = []) throws -> String {
            let result = try hrtem(["matrix", "status", "--plan", plan.path] + extra)
            XCTAssertEqual(result.status, 0, result.standardError)
            return result.standardOutput
        }
        /// The status line of unit `index`, and the detail line under it if any.
        func line(_ text: String, _ index: Int) -> (String, String?) {
            let lines = text.split(separator: "\n").map(String.init)
            guard let at = lines.firstIndex(where: { $0.hasPrefix(String(index).padding(toLength: 6, withPad: " ", startingAt: 0)) }) else {
                return ("", nil)
            }
            let next = at + 1 < lines.count && lines[at + 1].hasPrefix("      ") ? lines[at + 1].trimmingCharacters(in: .whitespaces) : nil
            return (lines[at], next)
        }

        let fresh = try status()
        XCTAssertTrue(fresh.hasSuffix("12 units: 0 done, 0 running, 12 pending, 0 failed\n"), fresh)
        XCTAssertEqual(line(fresh, 0).1, "not submitted")

        // The plan: 4 training units (dose-884 folds 0-1, dose-80 folds 0-1), then 8 evaluations, 2 per model.
        let planJSON = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: plan)) as? [String: Any])
        let trainIDs = try XCTUnwrap(planJSON["trainUnits"] as? [[String: Any]]).compactMap { $0["id"] as? String }
        let evaluations = try XCTUnwrap(planJSON["evaluationUnits"] as? [[String: Any]])
        XCTAssertEqual(trainIDs.count, 4)
        func evaluationsOf(_ model: Int) -> [Int] {
            evaluations.indices.filter { evaluations[$0]["trainUnitID"] as? String == trainIDs[model] }.map { $0 + 4 }
        }

        // A running unit is shown with its log; killed, it is failed.
        let log = folder.appendingPathComponent("unit-0.out")
        try Data().write(to: log)
        let slow = Process()
        slow.executableURL = productsFolder.appendingPathComponent("hrtem")
        slow.arguments = ["matrix", "run-unit", "--data", data.path, "--plan", plan.path, "--unit", "0"]
        slow.environment = ProcessInfo.processInfo.environment.merging(["HRTEM_SIMULATED_SECONDS": "60"]) { $1 }
        slow.standardOutput = try FileHandle(forWritingTo: log)
        slow.standardError = FileHandle.nullDevice
        try slow.run()
        var running = ""
        let deadline = Date().addingTimeInterval(30)
        while !line(running, 0).0.contains("running") && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            running = try status()
        }
        XCTAssertTrue(line(running, 0).0.contains(" running "), running)
        XCTAssertTrue(line(running, 0).0.hasSuffix(log.path), running)
        XCTAssertEqual(line(running, 0).1, "process \(slow.processIdentifier)")
        kill(slow.processIdentifier, SIGKILL)
        slow.waitUntilExit()
        let killed = try status()
        XCTAssertTrue(line(killed, 0).0.contains(" failed "), killed)
        XCTAssertEqual(line(killed, 0).1, "process \(slow.processIdentifier) ended without recording a result")

        // Unit 1 cannot write its model: a file stands where its folder must go.
        let blocker = data.appendingPathComponent("models/simulated/\(trainIDs[1])")
        try FileManager.default.createDirectory(at: blocker.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("in the way".utf8).write(to: blocker)
        for unit in 0..<4 {
            let result = try hrtem(["matrix", "run-unit", "--plan", plan.path, "--unit", String(unit)])
            XCTAssertEqual(result.status == 0, unit != 1, "unit \(unit): \(result.standardError)")
        }
        for unit in [0, 2, 3].flatMap(evaluationsOf) {
            XCTAssertEqual(try hrtem(["matrix", "run-unit", "--plan", plan.path, "--unit", String(unit)]).status, 0)
        }
        let broken = try status()
        XCTAssertTrue(broken.hasSuffix("12 units: 9 done, 0 running, 0 pending, 3 failed\n"), broken)
        XCTAssertTrue(line(broken, 1).0.contains(" failed "), broken)
        XCTAssertTrue(line(broken, 1).1?.contains("cannot create folder \(blocker.path)") ?? false, broken)
        for unit in evaluationsOf(1) {
            XCTAssertTrue(line(broken, unit).0.contains(" failed "), broken)
            XCTAssertEqual(line(broken, unit).1, "not run: its model (unit 1) failed")
        }
        let onlyFailed = try status(["--only", "failed"])
        XCTAssertEqual(onlyFailed.split(separator: "\n").filter { $0.contains(" failed ") }.count, 3, onlyFailed)
        XCTAssertTrue(onlyFailed.hasSuffix("3 units: 0 done, 0 running, 0 pending, 3 failed\n"), onlyFailed)

        // resubmit: only --failed is a selection; --dry-run writes the script and submits nothing.
        let unsaid = try hrtem(["matrix", "resubmit", "--plan", plan.path])
        XCTAssertEqual(unsaid.status, 64)
        XCTAssertTrue(unsaid.standardError.contains("--failed"), unsaid.standardError)
        let dry = try hrtem(["matrix", "resubmit", "--plan", plan.path, "--failed", "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.standardError)
        XCTAssertTrue(dry.standardOutput.contains("resubmitting 3 failed unit(s) with \(slurm.path)/resubmit-1.sh"), dry.standardOutput)
        let script = try read(slurm.appendingPathComponent("resubmit-1.sh"))
        XCTAssertTrue(script.contains("train_job=$(submit train 1%3 train.sbatch)"), script)
        let tasks = evaluationsOf(1).map { $0 - 4 }.map(String.init).joined(separator: "-")
        XCTAssertTrue(script.contains("job=$(submit evaluate \(tasks)%3 --dependency=afterok:\"${train_job}_1\" --kill-on-invalid-dep=yes evaluate.sbatch)"), script)
        XCTAssertEqual(try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-n", slurm.appendingPathComponent("resubmit-1.sh").path]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: slurm.appendingPathComponent("submitted.tsv").path), "nothing was submitted")

        // A plan outside an emitted folder cannot be resubmitted.
        let loose = folder.appendingPathComponent("loose")
        try FileManager.default.createDirectory(at: loose, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: plan, to: loose.appendingPathComponent("plan.json"))
        let noScripts = try hrtem(["matrix", "resubmit", "--plan", loose.appendingPathComponent("plan.json").path, "--failed"])
        XCTAssertNotEqual(noScripts.status, 0)
        XCTAssertTrue(noScripts.standardError.contains("no train.sbatch beside the plan"), noScripts.standardError)

        // The cause removed, the failed units run and everything is done.
        try FileManager.default.removeItem(at: blocker)
        for unit in [1] + evaluationsOf(1) {
            XCTAssertEqual(try hrtem(["matrix", "run-unit", "--plan", plan.path, "--unit", String(unit)]).status, 0)
        }
        let repaired = try status()
        XCTAssertTrue(repaired.hasSuffix("12 units: 12 done, 0 running, 0 pending, 0 failed\n"), repaired)
        let nothing = try hrtem(["matrix", "resubmit", "--plan", plan.path, "--failed"])
        XCTAssertEqual(nothing.status, 0, nothing.standardError)
        XCTAssertTrue(nothing.standardOutput.contains("nothing to resubmit"), nothing.standardOutput)
    }
}
