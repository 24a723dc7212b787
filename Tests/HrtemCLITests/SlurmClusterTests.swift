import Foundation
import Micrograph
import Preprocessing
import TestSupport
import XCTest

/// The Slurm path on a real one-node Slurm cluster (slurmctld + slurmd + munged on this
/// machine, made by `scripts/slurm-cluster.sh`, which installs Debian's slurm-wlm and munge when
/// they are missing): `--emit-slurm` + `submit.sh`, `status`, `resubmit --failed` and `collect`,
/// compared byte for byte with the local runner. Skips, saying why, where the script cannot run
/// a cluster (no root and no password-less sudo, no apt-get to install Slurm).
final class SlurmClusterTests: XCTestCase {
    private enum Cluster: Sendable {
        case running(folder: URL, configuration: String)
        case unavailable(String)
        case broken(String)
    }
    private static let cluster = Locked<Cluster?>(nil)
    private static let script = packageRoot.appendingPathComponent("scripts/slurm-cluster.sh")

    override class func setUp() {
        super.setUp()
        let started: Cluster
        do {
            let folder = try makeTemporaryFolder("hrtem-slurm")
            let result = try runProcess(URL(fileURLWithPath: "/bin/bash"), [script.path, "start", folder.path])
            let configuration = result.standardOutput.split(separator: "\n").last { $0.hasPrefix("SLURM_CONF=") }
                .map { String($0.dropFirst("SLURM_CONF=".count)) }
            if result.status == 0, let configuration {
                started = .running(folder: folder, configuration: configuration)
            } else {
                let reason = result.standardError.split(separator: "\n").last.map(String.init) ?? "exit \(result.status)"
                started = result.status == 77 ? .unavailable(reason) : .broken("\(script.path) start failed:\n\(result.standardError)")
                try? FileManager.default.removeItem(at: folder)
            }
        } catch {
            started = .broken("cannot run \(script.path): \(error)")
        }
        cluster.withLock { $0 = started }
    }

    override class func tearDown() {
        if case .running(let folder, _)? = cluster.value {
            _ = try? runProcess(URL(fileURLWithPath: "/bin/bash"), [script.path, "stop", folder.path])
            try? FileManager.default.removeItem(at: folder)
        }
        super.tearDown()
    }

    var folder: URL!
    var slurmEnvironment: [String: String] = [:]
    var clusterFolder: URL!

    override func setUpWithError() throws {
        switch Self.cluster.value {
        case .running(let cluster, let configuration)?:
            slurmEnvironment = ["SLURM_CONF": configuration]
            clusterFolder = cluster
        case .unavailable(let reason)?: throw XCTSkip("no Slurm cluster: \(reason)")
        case .broken(let message)?:
            XCTFail(message)
            throw XCTSkip("the cluster did not start")
        case nil: throw XCTSkip("the cluster was not set up")
        }
        folder = try makeTemporaryFolder("hrtem-slurm-test")
    }

    override func tearDown() { if let folder { try? FileManager.default.removeItem(at: folder) } }

    func read(_ url: URL) throws -> String { try String(contentsOf: url, encoding: .utf8) }

    func hrtem(_ arguments: [String]) throws -> CommandResult {
        try runHrtem(arguments, in: folder, environment: slurmEnvironment)
    }

    /// Waits until no job of the plan (train, evaluate, collect) is in the queue; fails with the
    /// queue and the daemons' logs after `timeout` seconds.
    func waitForJobs(of planFile: URL, timeout: Double = 240) throws {
        let plan = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: planFile)) as? [String: Any])
        let id = try XCTUnwrap(plan["id"] as? String).prefix(8)
        let names = ["train", "evaluate", "collect"].map { "hrtem-\($0)-\(id)" }.joined(separator: ",")
        let deadline = Date().addingTimeInterval(timeout)
        var queue = ""
        repeat {
            let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["squeue", "--noheader", "--name=\(names)", "--format=%i %T %r"],
                                        environment: slurmEnvironment)
            XCTAssertEqual(result.status, 0, result.standardError)
            queue = result.standardOutput
            if queue.isEmpty { return }
            Thread.sleep(forTimeInterval: 0.25)
        } while Date() < deadline
        let logs = ["slurmctld", "slurmd"].map { name in
            "--- \(name).log\n" + ((try? read(clusterFolder.appendingPathComponent("log/\(name).log")))?.split(separator: "\n").suffix(20)
                .joined(separator: "\n") ?? "")
        }
        XCTFail("jobs still queued after \(timeout) s:\n\(queue)\n" + logs.joined(separator: "\n"))
    }

    /// The log column of a status line: the absolute path at its end (it may hold spaces).
    func logPath<Line: StringProtocol>(_ line: Line) -> String? {
        line.range(of: " /").map { String(line[$0.lowerBound...].dropFirst()) }
    }

    func submit(_ folder: URL, script: String = "submit.sh") throws -> String {
        let result = try runProcess(URL(fileURLWithPath: "/bin/bash"), [folder.appendingPathComponent(script).path], environment: slurmEnvironment)
        XCTAssertEqual(result.status, 0, result.standardError)
        return result.standardOutput
    }

    /// Two tiny trainable versions (12 patches of 16 x 16 px, 3 folds) in `data/datasets/`.
    func makeDiscDatasets(in data: URL) throws {
        for (name, contrast, seed) in [("easy", Float(3), UInt64(1)), ("hard", Float(1), UInt64(2))] {
            try writeThreeFoldDiscVersionFolder(at: data.appendingPathComponent("datasets/\(name)/\(name)-v1"), name: name,
                                       versionId: "\(name)-v1", contrast: contrast, seed: seed)
        }
    }

    /// The trainer on the cluster: every fold model trained by an array task, every evaluation
    /// by another, gathered by collect: the same matrix.csv, to the byte, as the local runner's.
    func testTrainedMatrixOnSlurmEqualsTheLocalRun() throws {
        let local = folder.appendingPathComponent("local data"), shared = folder.appendingPathComponent("shared data")
        try makeDiscDatasets(in: local)
        try makeDiscDatasets(in: shared)
        let matrix = ["matrix", "--datasets", "easy,hard", "--folds", "2", "--epochs", "2", "--batch", "8", "--threads", "1",
                      "--widths", "4", "--bottleneck", "8", "--seed", "5"]
        let localRun = try hrtem(matrix + ["--data", local.path, "--jobs", "2", "--out", folder.appendingPathComponent("local report").path])
        XCTAssertEqual(localRun.status, 0, localRun.standardError)

        let slurm = folder.appendingPathComponent("slurm run")
        let emitted = try hrtem(matrix + ["--data", shared.path, "--emit-slurm", slurm.path,
                                          "--out", folder.appendingPathComponent("cluster report").path])
        XCTAssertEqual(emitted.status, 0, emitted.standardError)
        let submitted = try submit(slurm)
        XCTAssertTrue(submitted.contains("evaluation arrays: 4, each after its model's training task"), submitted)
        let plan = slurm.appendingPathComponent("plan.json")
        try waitForJobs(of: plan)

        let status = try hrtem(["matrix", "status", "--data", shared.path, "--plan", plan.path])
        XCTAssertEqual(status.status, 0, status.standardError)
        XCTAssertFalse(status.standardError.contains("note:"), "squeue answers: \(status.standardError)")
        XCTAssertTrue(status.standardOutput.hasSuffix("12 units: 12 done, 0 running, 0 pending, 0 failed\n"), status.standardOutput)
        // Each unit names the log its array task wrote, and the log says the unit ran.
        let trainLog = try XCTUnwrap(status.standardOutput.split(separator: "\n").first { $0.hasPrefix("0 ") }.flatMap(logPath))
        XCTAssertTrue(trainLog.hasPrefix(slurm.appendingPathComponent("logs/train-").path), trainLog)
        XCTAssertTrue(try read(URL(fileURLWithPath: trainLog)).contains("unit 0 (train easy"), trainLog)

        // collect.sbatch wrote the report on the cluster; collecting again here gives the same.
        let clusterCSV = try read(folder.appendingPathComponent("cluster report/matrix.csv"))
        let collected = try hrtem(["matrix", "collect", "--data", shared.path, "--plan", plan.path,
                                   "--out", folder.appendingPathComponent("collected").path])
        XCTAssertEqual(collected.status, 0, collected.standardError)
        let localCSV = try read(folder.appendingPathComponent("local report/matrix.csv"))
        XCTAssertEqual(try read(folder.appendingPathComponent("collected/matrix.csv")), localCSV, "Slurm + collect = the local runner")
        XCTAssertEqual(clusterCSV, localCSV)
        XCTAssertEqual(try read(folder.appendingPathComponent("collected/cells/easy__on__hard.csv")),
                       try read(folder.appendingPathComponent("local report/cells/easy__on__hard.csv")))
    }

    /// A training unit that fails holds back its own evaluations only; status names it, its log
    /// and its error; once the cause is gone, `resubmit --failed` runs exactly the failed units
    /// and the matrix is complete and equal to the local run's.
    func testOneFailedModelIsReportedAndResubmitted() throws {
        let local = folder.appendingPathComponent("local data"), shared = folder.appendingPathComponent("shared data")
        for data in [local, shared] {
            for (name, dose) in [("dose-884", 884), ("dose-80", 80)] {
                let version = data.appendingPathComponent("datasets/\(name)/v\(dose)abc")
                try writeVersionRecipe(at: version, name: name, versionId: "v\(dose)abc", query: "dose ~ \(dose) +- 20", folds: 2)
                try writeFileAtomically(studyFolds(count: 6, k: 2).jsonBytes(), to: version.appendingPathComponent("folds.json"))
            }
        }
        let matrix = ["matrix", "--datasets", "dose-884,dose-80", "--folds", "2", "--epochs", "1", "--executor", "simulated"]
        let localRun = try hrtem(matrix + ["--data", local.path, "--out", folder.appendingPathComponent("local report").path])
        XCTAssertEqual(localRun.status, 0, localRun.standardError)

        let slurm = folder.appendingPathComponent("slurm run")
        XCTAssertEqual(try hrtem(matrix + ["--data", shared.path, "--emit-slurm", slurm.path,
                                           "--out", folder.appendingPathComponent("cluster report").path]).status, 0)
        let plan = slurm.appendingPathComponent("plan.json")
        let planJSON = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: plan)) as? [String: Any])
        let trainIDs = try XCTUnwrap(planJSON["trainUnits"] as? [[String: Any]]).compactMap { $0["id"] as? String }
        let evaluations = try XCTUnwrap(planJSON["evaluationUnits"] as? [[String: Any]])
        let ofModelOne = evaluations.indices.filter { evaluations[$0]["trainUnitID"] as? String == trainIDs[1] }.map { $0 + 4 }
        // Unit 1 cannot write its model: a file stands where its folder must go.
        let blocker = shared.appendingPathComponent("models/simulated/\(trainIDs[1])")
        try FileManager.default.createDirectory(at: blocker.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("in the way".utf8).write(to: blocker)

        _ = try submit(slurm)
        try waitForJobs(of: plan)
        let status = try hrtem(["matrix", "status", "--data", shared.path, "--plan", plan.path])
        XCTAssertEqual(status.status, 0, status.standardError)
        let text = status.standardOutput
        XCTAssertTrue(text.hasSuffix("12 units: 9 done, 0 running, 0 pending, 3 failed\n"),
                      "every other model's evaluations ran:\n\(text)")
        let lines = text.split(separator: "\n").map(String.init)
        let unitOne = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("1 ") })
        XCTAssertTrue(lines[unitOne].contains(" failed "), text)
        XCTAssertTrue(lines[unitOne + 1].contains("cannot create folder \(blocker.path)"), text)
        let log = try XCTUnwrap(logPath(lines[unitOne]))
        XCTAssertTrue(try read(URL(fileURLWithPath: log)).contains("cannot create folder"), "the task's log holds the error")
        for unit in ofModelOne {
            let at = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("\(unit) ") })
            XCTAssertTrue(lines[at].contains(" failed "), text)
            XCTAssertEqual(lines[at + 1].trimmingCharacters(in: .whitespaces), "not run: its model (unit 1) failed")
        }
        let incomplete = try hrtem(["matrix", "collect", "--data", shared.path, "--plan", plan.path,
                                    "--out", folder.appendingPathComponent("collected").path])
        XCTAssertNotEqual(incomplete.status, 0)
        XCTAssertTrue(incomplete.standardError.contains("3 unit(s) have no result"), incomplete.standardError)

        try FileManager.default.removeItem(at: blocker)
        let resubmitted = try hrtem(["matrix", "resubmit", "--data", shared.path, "--plan", plan.path, "--failed"])
        XCTAssertEqual(resubmitted.status, 0, resubmitted.standardError)
        XCTAssertTrue(resubmitted.standardOutput.contains("resubmitting 3 failed unit(s)"), resubmitted.standardOutput)
        try waitForJobs(of: plan)
        let submissions = try read(slurm.appendingPathComponent("submitted.tsv")).split(separator: "\n")
        XCTAssertEqual(submissions.count, 1 + 4 + 2, "submit.sh: train + 4 evaluation arrays; resubmit: train + 1")
        XCTAssertTrue(submissions[5].hasPrefix("train\t") && submissions[5].hasSuffix("\t1"), "\(submissions)")
        XCTAssertEqual(ofModelOne.count, 2)
        XCTAssertTrue(submissions[6].hasSuffix("\t\(ofModelOne[0] - 4)-\(ofModelOne[1] - 4)"), "\(submissions)")

        let repaired = try hrtem(["matrix", "status", "--data", shared.path, "--plan", plan.path])
        XCTAssertTrue(repaired.standardOutput.hasSuffix("12 units: 12 done, 0 running, 0 pending, 0 failed\n"), repaired.standardOutput)
        let collected = try hrtem(["matrix", "collect", "--data", shared.path, "--plan", plan.path,
                                   "--out", folder.appendingPathComponent("collected").path])
        XCTAssertEqual(collected.status, 0, collected.standardError)
        XCTAssertEqual(try read(folder.appendingPathComponent("collected/matrix.csv")),
                       try read(folder.appendingPathComponent("local report/matrix.csv")))
        // The resubmission's collect job wrote the complete report on the cluster too.
        XCTAssertEqual(try read(folder.appendingPathComponent("cluster report/matrix.csv")),
                       try read(folder.appendingPathComponent("local report/matrix.csv")))
    }
}
