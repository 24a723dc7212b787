import Experiments
import Foundation
import TestSupport
import XCTest

final class SlurmEmitterTests: XCTestCase {
    var folders: [URL] = []
    override func tearDown() { for folder in folders { try? FileManager.default.removeItem(at: folder) } }

    func testScriptsPassBashSyntaxCheckAndCoverEveryUnit() throws {
        let plan = try samplePlan(folds: 3)
        let folder = try temporaryFolder().appendingPathComponent("slurm run")   // a space on purpose
        folders.append(folder.deletingLastPathComponent())
        let files = try SlurmEmitter.emit(plan, to: folder, options: SlurmOptions(
            hrtemExecutable: "/opt/hrtem it's/bin/hrtem", dataFolder: "/shared/hrtem-data", partition: "cpu",
            timeLimit: "02:00:00", memory: "8G", maxConcurrentTasks: 16))
        XCTAssertEqual(try MatrixPlan.read(from: files.planFile), plan, "the array tasks read the very plan")
        for script in [files.trainScript, files.evaluateScript, files.collectScript, files.submitScript] {
            let check = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-n", script.path])
            XCTAssertEqual(check.status, 0, "bash -n \(script.lastPathComponent): \(check.standardError)")
            XCTAssertTrue(FileManager.default.isExecutableFile(atPath: script.path))
        }
        let train = try String(contentsOf: files.trainScript, encoding: .utf8)
        let evaluate = try String(contentsOf: files.evaluateScript, encoding: .utf8)
        let submit = try String(contentsOf: files.submitScript, encoding: .utf8)
        XCTAssertTrue(train.contains("#SBATCH --array=0-\(plan.trainUnits.count - 1)%16\n"), train)
        XCTAssertTrue(evaluate.contains("#SBATCH --array=0-\(plan.evaluationUnits.count - 1)%16\n"), evaluate)
        XCTAssertTrue(evaluate.contains("$(( SLURM_ARRAY_TASK_ID + \(plan.trainUnits.count) ))"))
        XCTAssertTrue(train.contains("#SBATCH --partition=cpu\n") && train.contains("#SBATCH --mem=8G\n"))
        XCTAssertTrue(submit.contains("train_job=$(submit train 0-\(plan.trainUnits.count - 1)%16 train.sbatch)"), submit)
        // One evaluation array per fold model, after that model's training task only.
        XCTAssertEqual(submit.components(separatedBy: "--kill-on-invalid-dep=yes evaluate.sbatch)").count - 1, plan.trainUnits.count)
        XCTAssertTrue(submit.contains("--dependency=afterok:\"${train_job}_\(plan.trainUnits.count - 1)\" --kill-on-invalid-dep=yes"), submit)
        XCTAssertTrue(submit.contains("${after:+--dependency=afterany$after} collect.sbatch)"), submit)

        // What bash would pass to hrtem: the quoted paths come through whole.
        let echo = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", """
            HRTEM=echo SLURM_ARRAY_TASK_ID=2 bash \(shellQuote(files.evaluateScript.path))
            """])
        XCTAssertEqual(echo.status, 0, echo.standardError)
        XCTAssertEqual(echo.standardOutput, "matrix run-unit --plan \(files.planFile.path) --results \(files.resultsFolder.path) --data /shared/hrtem-data --unit \(plan.trainUnits.count + 2)\n")

        XCTAssertThrowsError(try SlurmEmitter.emit(plan, to: folder, options: SlurmOptions(hrtemExecutable: "hrtem", partition: "a b")))

        // A plan name is only ever a comment in the scripts, whatever it holds.
        var named = plan
        named.name = "dose\ntouch injected\r\u{2028}x"
        let other = try SlurmEmitter.emit(named, to: folder.appendingPathComponent("named"), options: SlurmOptions(hrtemExecutable: "hrtem"))
        for script in [other.trainScript, other.evaluateScript, other.collectScript, other.submitScript] {
            let lines = try String(contentsOf: script, encoding: .utf8).split(separator: "\n")
            XCTAssertFalse(lines.contains { $0.hasPrefix("touch") }, script.lastPathComponent)
            XCTAssertTrue(lines.contains { $0.hasPrefix("#") && $0.contains("dose touch injected") }, script.lastPathComponent)
        }
    }
}
