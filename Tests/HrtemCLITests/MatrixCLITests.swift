import Foundation
import Micrograph
import Preprocessing
import TestSupport
import XCTest

/// End-to-end tests of `hrtem matrix` / `hrtem sweep noise` through the built binary, with the
/// simulated executor (plumbing: planning, resuming, Slurm, collect, reports; no training).
final class MatrixCLITests: XCTestCase {
    var folder: URL!
    override func setUpWithError() throws { folder = try makeTemporaryFolder("hrtem-matrix-cli") }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    /// Three dataset version folders as the materializer lays them out, in `data/datasets/<name>/<id>/`.
    func makeDatasets(in data: URL) throws {
        for (name, dose) in [("dose-884", 884), ("dose-423", 423), ("dose-80", 80)] {
            let version = data.appendingPathComponent("datasets/\(name)/v\(dose)abc")
            try writeVersionRecipe(at: version, name: name, versionId: "v\(dose)abc", query: "dose ~ \(dose) +- 20", folds: 3)
            try writeFileAtomically(studyFolds(count: 6, k: 3).jsonBytes(), to: version.appendingPathComponent("folds.json"))
        }
    }

    func matrixArguments(_ data: URL, out: URL) -> [String] {
        ["matrix", "--data", data.path, "--datasets", "dose-884,dose-423,dose-80", "--folds", "3", "--epochs", "2",
         "--executor", "simulated", "--out", out.path]
    }

    func read(_ url: URL) throws -> String { try String(contentsOf: url, encoding: .utf8) }

    func testMatrixRunsResumesAndReports() throws {
        let data = folder.appendingPathComponent("data"), out = folder.appendingPathComponent("report")
        try makeDatasets(in: data)
        let first = try runHrtem(matrixArguments(data, out: out) + ["--jobs", "2"])
        XCTAssertEqual(first.status, 0, first.standardError)
        XCTAssertTrue(first.standardOutput.contains("report: \(out.path)/report.html"), first.standardOutput)
        XCTAssertEqual(first.standardError.components(separatedBy: "] ran: ").count - 1, 9 + 27)

        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("matrix.json"))) as? [String: Any]
        let cells = try XCTUnwrap(json?["cells"] as? [[String: Any]])
        XCTAssertEqual(cells.count, 9)
        XCTAssertEqual(json?["complete"] as? Bool, true)
        for cell in cells {
            let dice = try XCTUnwrap(cell["hardDice"] as? [String: Any])
            let values = try XCTUnwrap(dice["values"] as? [Double])
            XCTAssertEqual(values.count, 3)
            let mean = values.reduce(0, +) / 3
            XCTAssertEqual(dice["mean"] as? Double ?? -1, mean, accuracy: 1e-12)
            let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 3).squareRoot()
            XCTAssertEqual(dice["std"] as? Double ?? -1, std, accuracy: 1e-12, "population std")
        }
        for name in ["matrix.csv", "heatmap.svg", "segmentation-bias.svg", "report.html", "cells/dose-884__on__dose-80.csv"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(name).path), name)
        }
        let csvBefore = try read(out.appendingPathComponent("matrix.csv"))

        let again = try runHrtem(matrixArguments(data, out: out))
        XCTAssertEqual(again.status, 0, again.standardError)
        XCTAssertFalse(again.standardError.contains("] ran: "), "a finished matrix reruns nothing:\n\(again.standardError)")
        XCTAssertEqual(try read(out.appendingPathComponent("matrix.csv")), csvBefore)
    }

    func testKilledMatrixResumesWithIdenticalResults() throws {
        let data = folder.appendingPathComponent("data"), out = folder.appendingPathComponent("report")
        try makeDatasets(in: data)
        let reference = folder.appendingPathComponent("reference")
        try makeDatasets(in: reference)
        let clean = try runHrtem(matrixArguments(reference, out: folder.appendingPathComponent("reference-report")))
        XCTAssertEqual(clean.status, 0, clean.standardError)

        let process = Process()
        process.executableURL = productsFolder.appendingPathComponent("hrtem")
        process.arguments = matrixArguments(data, out: out) + ["--jobs", "1"]
        var environment = ProcessInfo.processInfo.environment
        environment["HRTEM_SIMULATED_SECONDS"] = "0.05"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let experiments = data.appendingPathComponent("experiments")
        func recorded() -> [String] {
            let enumerator = FileManager.default.enumerator(atPath: experiments.path)
            return (enumerator?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".json") && !$0.hasSuffix("plan.json") }
        }
        let deadline = Date().addingTimeInterval(60)
        while recorded().count < 12 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let before = Set(recorded())
        XCTAssertGreaterThanOrEqual(before.count, 12)
        XCTAssertLessThan(before.count, 36, "the run was killed before the end")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("matrix.csv").path))

        let resumed = try runHrtem(matrixArguments(data, out: out))
        XCTAssertEqual(resumed.status, 0, resumed.standardError)
        XCTAssertEqual(resumed.standardError.components(separatedBy: "] already-done: ").count - 1, before.count,
                       "every unit recorded before the kill is reused, none redone")
        XCTAssertEqual(resumed.standardError.components(separatedBy: "] ran: ").count - 1, 36 - before.count)
        XCTAssertEqual(try read(out.appendingPathComponent("matrix.csv")),
                       try read(folder.appendingPathComponent("reference-report/matrix.csv")))
    }

    func testSlurmArraysThenCollectEqualTheLocalRun() throws {
        let data = folder.appendingPathComponent("data")
        try makeDatasets(in: data)
        let local = try runHrtem(matrixArguments(data, out: folder.appendingPathComponent("local")))
        XCTAssertEqual(local.status, 0, local.standardError)

        // The cluster: a separate data folder on "shared storage".
        let shared = folder.appendingPathComponent("shared data")
        try makeDatasets(in: shared)
        let slurm = folder.appendingPathComponent("slurm run")
        let emitted = try runHrtem(matrixArguments(shared, out: folder.appendingPathComponent("cluster report"))
                                   + ["--emit-slurm", slurm.path, "--slurm-time", "01:00:00"])
        XCTAssertEqual(emitted.status, 0, emitted.standardError)
        for script in ["train.sbatch", "evaluate.sbatch", "collect.sbatch", "submit.sh"] {
            let check = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-n", slurm.appendingPathComponent(script).path])
            XCTAssertEqual(check.status, 0, "bash -n \(script): \(check.standardError)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: shared.appendingPathComponent("experiments").path),
                       "emitting runs nothing")

        // A stand-in `sbatch` that runs every array task in turn, as Slurm would, one process each
        // (the tasks of a command-line --array, else of the script's #SBATCH --array).
        let bin = folder.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let sbatch = bin.appendingPathComponent("sbatch")
        try Data("""
            #!/usr/bin/env bash
            set -euo pipefail
            script="${@: -1}"
            echo "sbatch $*" >> "$SBATCH_LOG"
            array=""
            for option in "$@"; do case "$option" in --array=*) array=${option#--array=} ;; esac; done
            [ -n "$array" ] || array=$(sed -n 's/^#SBATCH --array=\\([0-9,-]*\\).*/\\1/p' "$script")
            array=${array%%%*}
            job=$((RANDOM + 1000))
            if [ -n "$array" ]; then
              for range in ${array//,/ }; do
                for ((i=${range%-*}; i<=${range#*-}; i++)); do
                  SLURM_ARRAY_JOB_ID=$job SLURM_ARRAY_TASK_ID=$i bash "$script" >> "$SBATCH_LOG" 2>&1
                done
              done
            else
              SLURM_JOB_ID=$job bash "$script" >> "$SBATCH_LOG" 2>&1
            fi
            echo "$job;cluster"

            """.utf8).write(to: sbatch)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: sbatch.path)
        let log = folder.appendingPathComponent("sbatch.log")
        let submitted = try runProcess(URL(fileURLWithPath: "/bin/bash"), [slurm.appendingPathComponent("submit.sh").path],
                                       environment: ["PATH": bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? ""),
                                                     "SBATCH_LOG": log.path])
        let logText = (try? read(log)) ?? ""
        XCTAssertEqual(submitted.status, 0, submitted.standardError + logText)
        XCTAssertTrue(logText.contains("--dependency=afterok:"), logText)
        XCTAssertEqual(logText.components(separatedBy: "): ran").count - 1, 9 + 27, logText)
        XCTAssertEqual(try read(folder.appendingPathComponent("cluster report/matrix.csv")),
                       try read(folder.appendingPathComponent("local/matrix.csv")),
                       "array tasks + collect give the local runner's results")
        for cell in ["dose-884__on__dose-80.csv", "dose-80__on__dose-80.csv"] {
            XCTAssertEqual(try read(folder.appendingPathComponent("cluster report/cells/\(cell)")),
                           try read(folder.appendingPathComponent("local/cells/\(cell)")))
        }

        // run-unit on a finished unit skips it; a bad index is an error that says the range.
        let plan = slurm.appendingPathComponent("plan.json")
        let skip = try runHrtem(["matrix", "run-unit", "--data", shared.path, "--plan", plan.path, "--unit", "0"])
        XCTAssertEqual(skip.status, 0, skip.standardError)
        XCTAssertTrue(skip.standardOutput.contains("already-done"), skip.standardOutput)
        let bad = try runHrtem(["matrix", "run-unit", "--data", shared.path, "--plan", plan.path, "--unit", "36"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.standardError.contains("0...35"), bad.standardError)
    }

    func testCollectReportsMissingUnits() throws {
        let data = folder.appendingPathComponent("data")
        try makeDatasets(in: data)
        let slurm = folder.appendingPathComponent("slurm")
        XCTAssertEqual(try runHrtem(matrixArguments(data, out: folder.appendingPathComponent("r")) + ["--emit-slurm", slurm.path]).status, 0)
        let plan = slurm.appendingPathComponent("plan.json").path
        for unit in 0..<9 {
            XCTAssertEqual(try runHrtem(["matrix", "run-unit", "--data", data.path, "--plan", plan, "--unit", String(unit)]).status, 0)
        }
        let partial = try runHrtem(["matrix", "collect", "--data", data.path, "--plan", plan, "--out", folder.appendingPathComponent("r").path])
        XCTAssertNotEqual(partial.status, 0)
        XCTAssertTrue(partial.standardError.contains("27 unit(s) have no result"), partial.standardError)
        XCTAssertTrue(try read(folder.appendingPathComponent("r/report.html")).contains("Incomplete"))
    }

    func testNoiseSweep() throws {
        let data = folder.appendingPathComponent("data"), out = folder.appendingPathComponent("sweep")
        try makeDatasets(in: data)
        let result = try runHrtem(["sweep", "noise", "--data", data.path, "--train", "dose-884", "--test", "dose-80,dose-423",
                                   "--rho", "0,0.4,0.8", "--folds", "2", "--epochs", "1", "--executor", "simulated",
                                   "--out", out.path])
        XCTAssertEqual(result.status, 0, result.standardError)
        let lines = try read(out.appendingPathComponent("sweep.csv")).split(separator: "\n")
        XCTAssertEqual(lines.count, 1 + 3 * 2)
        XCTAssertTrue(lines[0].hasPrefix("rho,mode,tested_on"))
        XCTAssertTrue(try read(out.appendingPathComponent("sweep.svg")).contains("<polyline"))

        let both = try runHrtem(["sweep", "noise", "--data", data.path, "--train", "dose-884", "--test", "dose-80",
                                 "--rho", "0", "--rho-max", "0.8"])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.standardError.contains("either --rho or --rho-max"), both.standardError)
        let missing = try runHrtem(["matrix", "--data", data.path, "--datasets", "dose-884,nope", "--executor", "simulated"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.standardError.contains("dataset nope: no version folder"), missing.standardError)
    }
}
