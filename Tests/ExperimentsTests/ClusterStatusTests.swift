import Experiments
import Foundation
import Micrograph
import TestSupport
import XCTest

/// The submission rule (per-model dependencies) and how a unit's state is judged from results,
/// run records, submitted jobs and the queue; no Slurm needed (a stand-in `sbatch` records calls).
final class ClusterStatusTests: XCTestCase {
    var folder: URL!
    override func setUpWithError() throws { folder = try temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    /// Runs a submission script with a stand-in `sbatch` that logs its arguments and answers
    /// job ids 101, 102, ...; returns the logged argument lines.
    func runWithStandInSbatch(_ script: String) throws -> [String] {
        let bin = folder.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try Data("""
            #!/usr/bin/env bash
            n=$(( $(wc -l < "$SBATCH_LOG" 2>/dev/null || echo 0) + 101 ))
            echo "$*" >> "$SBATCH_LOG"
            echo "$n;cluster"

            """.utf8).write(to: bin.appendingPathComponent("sbatch"))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin.appendingPathComponent("sbatch").path)
        let url = folder.appendingPathComponent("submit.sh")
        try Data(script.utf8).write(to: url)
        let log = folder.appendingPathComponent("sbatch.log")
        let result = try runProcess(URL(fileURLWithPath: "/bin/bash"), [url.path], environment: [
            "PATH": bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? ""), "SBATCH_LOG": log.path])
        XCTAssertEqual(result.status, 0, result.standardError)
        return try String(contentsOf: log, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func testEachModelsEvaluationsWaitForThatModelOnly() throws {
        let plan = try samplePlan(folds: 2)   // 3 datasets x 2 folds: 6 models, 18 evaluations
        XCTAssertEqual(plan.trainUnits.count, 6)
        let script = SlurmEmitter.submissionScript(plan, trainUnits: Array(0..<6), evaluationUnits: Array(6..<24),
                                                   maxConcurrentTasks: 4, purpose: "everything", reportFolder: "/r e/port")
        let calls = try runWithStandInSbatch(script)
        XCTAssertEqual(calls.first, "--parsable --array=0-5%4 train.sbatch")
        XCTAssertEqual(calls.count, 1 + 6 + 1)
        for model in 0..<6 {
            // Evaluation task t runs unit 6 + t; model m's evaluations are the ones naming its training unit.
            let tasks = plan.evaluationUnits.indices.filter { plan.evaluationUnits[$0].trainUnitID == plan.trainUnits[model].id }
            XCTAssertEqual(calls[1 + model], "--parsable --array=\(SlurmEmitter.arraySpec(tasks))%4 --dependency=afterok:101_\(model) --kill-on-invalid-dep=yes evaluate.sbatch")
        }
        XCTAssertEqual(calls.last, "--parsable --dependency=afterany:101:102:103:104:105:106:107 collect.sbatch")

        // submitted.tsv maps every unit to its array task and log.
        let submissions = try SlurmSubmissions(folder: folder, plan: plan)
        XCTAssertEqual(submissions.latestTask[3], "101_3")
        XCTAssertEqual(submissions.latestLog[3], "logs/train-101_3.out")
        let lastEvaluation = plan.evaluationUnits.count - 1
        XCTAssertEqual(submissions.latestTask[6 + lastEvaluation], "107_\(lastEvaluation)")
        XCTAssertEqual(submissions.latestLog[6], "logs/evaluate-102_0.out")
    }

    func testAResubmissionDependsOnTheRetrainedModelsOnly() throws {
        let plan = try samplePlan(folds: 2)
        let modelOne = plan.evaluationUnits.indices.filter { plan.evaluationUnits[$0].trainUnitID == plan.trainUnits[1].id }
        let other = try XCTUnwrap(plan.evaluationUnits.indices.first { plan.evaluationUnits[$0].trainUnitID == plan.trainUnits[4].id })
        let script = SlurmEmitter.submissionScript(plan, trainUnits: [1], evaluationUnits: modelOne.map { $0 + 6 } + [other + 6],
                                                   maxConcurrentTasks: nil, purpose: "again", reportFolder: nil)
        XCTAssertEqual(try runWithStandInSbatch(script), [
            "--parsable --array=1 train.sbatch",
            "--parsable --array=\(SlurmEmitter.arraySpec(modelOne)) --dependency=afterok:101_1 --kill-on-invalid-dep=yes evaluate.sbatch",
            "--parsable --array=\(other) evaluate.sbatch",
            "--parsable --dependency=afterany:101:102:103 collect.sbatch",
        ])
        // A later submission of a unit replaces the earlier one.
        let submissions = try SlurmSubmissions(folder: folder, plan: plan)
        XCTAssertEqual(submissions.latestTask[1], "101_1")
        XCTAssertNil(submissions.latestTask[0])
    }

    func testArrayLists() {
        XCTAssertEqual(SlurmEmitter.arraySpec([0, 1, 2, 5, 7, 8]), "0-2,5,7-8")
        XCTAssertEqual(SlurmEmitter.arrayTasks("0-2,5,7-8%3"), [0, 1, 2, 5, 7, 8])
        XCTAssertNil(SlurmEmitter.arrayTasks("3-1"))
        XCTAssertNil(SlurmEmitter.arrayTasks("x"))
    }

    func testMalformedSubmissionLineIsNamed() throws {
        try Data("train\t12\t0-3\nevaluate 13 0-1\n".utf8).write(to: folder.appendingPathComponent("submitted.tsv"))
        XCTAssertThrowsError(try SlurmSubmissions(folder: folder, plan: try samplePlan(folds: 2))) { error in
            XCTAssertTrue("\(error)".contains("submitted.tsv: line 2:"), "\(error)")
        }
    }

    /// Every rule of `PlanStatus.read`, in order of precedence.
    func testStatesFromResultsRunsSubmissionsAndTheQueue() throws {
        let plan = try samplePlan(folds: 2)
        let results = folder.appendingPathComponent("results")
        let store = JSONResultStore(folder: results), runs = UnitRunRecords(resultsFolder: results)
        let executor = SimulatedExecutor()
        // Model 0 done, with its run; model 1 failed; model 2 ran in job 101_2, which is gone; model
        // 3 ran in a local process that died; model 4 is running (queue); model 5 waits (queue).
        try store.record(try executor.train(plan.trainUnits[0]), for: plan.trainUnits[0])
        var run = UnitRun.startingNow(unit: 0, unitID: plan.trainUnits[0].id, environment: [:])
        run.state = .finished
        run.log = "/logs/train-101_0.out"
        try runs.record(run)
        run = UnitRun.startingNow(unit: 1, unitID: plan.trainUnits[1].id, environment: ["SLURM_ARRAY_JOB_ID": "101", "SLURM_ARRAY_TASK_ID": "1"])
        XCTAssertEqual(run.slurmJob, "101_1")
        run.state = .failed
        run.message = "train X fold 1: disk full"
        try runs.record(run)
        try runs.record(UnitRun.startingNow(unit: 2, unitID: plan.trainUnits[2].id,
                                            environment: ["SLURM_ARRAY_JOB_ID": "101", "SLURM_ARRAY_TASK_ID": "2"]))
        var dead = UnitRun.startingNow(unit: 3, unitID: plan.trainUnits[3].id, environment: [:])
        dead.processID = Int32.max - 1
        try runs.record(dead)
        // Evaluations: model 0's first is done, the rest of model 0's were submitted and are gone;
        // one of model 4's runs by hand inside some other Slurm job (this live process).
        let ofModel = { (model: Int) in plan.evaluationUnits.indices.filter { plan.evaluationUnits[$0].trainUnitID == plan.trainUnits[model].id } }
        let byHand = 6 + ofModel(4)[1]
        try runs.record(UnitRun.startingNow(unit: byHand, unitID: plan.units[byHand].id, environment: ["SLURM_JOB_ID": "555"]))
        let firstOfZero = ofModel(0)[0]
        try store.record(try executor.evaluate(plan.evaluationUnits[firstOfZero], model: try executor.train(plan.trainUnits[0])),
                         for: plan.evaluationUnits[firstOfZero])
        try Data("train\t101\t0-5\nevaluate\t102\t\(SlurmEmitter.arraySpec(ofModel(0)))\n".utf8)
            .write(to: folder.appendingPathComponent("submitted.tsv"))
        let trainName = SlurmEmitter.jobName("train", plan: plan), evaluateName = SlurmEmitter.jobName("evaluate", plan: plan)
        let queue = SlurmQueue.Snapshot.entries(SlurmQueue.parse("""
            101|4|\(trainName)|RUNNING|None
            101|5|\(trainName)|PENDING|Resources
            103|\(ofModel(5)[0])|\(evaluateName)|PENDING|Dependency
            77|0|someone-else|RUNNING|None
            """))
        let statuses = try PlanStatus.read(plan, scriptFolder: folder, resultsFolder: results, queue: queue)
        XCTAssertEqual(statuses.count, plan.unitCount)
        func state(_ index: Int) -> (UnitStatus.State, String?) { (statuses[index].state, statuses[index].detail) }
        XCTAssertEqual(statuses[0].state, .done)
        XCTAssertEqual(statuses[0].log, "/logs/train-101_0.out")
        XCTAssertEqual(state(1).0, .failed)
        XCTAssertEqual(state(1).1, "train X fold 1: disk full")
        XCTAssertEqual(state(2).0, .failed)
        XCTAssertEqual(state(2).1, "job 101_2 ended without recording a result (cancelled, or killed for time or memory?)")
        XCTAssertEqual(state(3).0, .failed)
        XCTAssertEqual(state(3).1, "process \(Int32.max - 1) ended without recording a result")
        XCTAssertEqual(state(4).0, .running)
        XCTAssertEqual(statuses[4].log, folder.appendingPathComponent("logs/train-101_4.out").path)
        XCTAssertEqual(state(5).0, .pending)
        XCTAssertEqual(state(5).1, "job 101_5, waiting: Resources")
        XCTAssertEqual(statuses[6 + firstOfZero].state, .done)
        for task in ofModel(0).dropFirst() {
            XCTAssertEqual(state(6 + task).0, .failed)
            XCTAssertEqual(state(6 + task).1, "job 102_\(task) left the queue without running it (cancelled?)")
        }
        for model in [1, 2, 3] {
            for task in ofModel(model) {
                XCTAssertEqual(state(6 + task).0, .failed)
                XCTAssertEqual(state(6 + task).1, "not run: its model (unit \(model)) failed")
            }
        }
        XCTAssertEqual(state(6 + ofModel(5)[0]).1, "job 103_\(ofModel(5)[0]), waiting: Dependency")
        XCTAssertEqual(state(6 + ofModel(4)[0]).0, .pending)
        XCTAssertEqual(state(6 + ofModel(4)[0]).1, "not submitted")
        XCTAssertEqual(state(byHand).0, .running)
        XCTAssertEqual(state(byHand).1, "process \(getpid())")

        // Without the queue: a Slurm run can only be taken at its word; queued units are pending.
        let offline = try PlanStatus.read(plan, scriptFolder: folder, resultsFolder: results, queue: .unavailable("no squeue"))
        XCTAssertEqual(offline[2].state, .running)
        XCTAssertEqual(offline[2].detail, "job 101_2 (the queue could not be read to confirm)")
        XCTAssertEqual(offline[4].state, .pending)
        XCTAssertEqual(offline[4].detail, "job 101_4")
        XCTAssertEqual(offline[6 + ofModel(0)[1]].state, .pending)

        let text = PlanStatus.text(statuses)
        XCTAssertTrue(text.hasPrefix("unit  state    what"), text)
        XCTAssertTrue(text.contains("\n      train X fold 1: disk full\n"), text)
        XCTAssertTrue(text.hasSuffix("24 units: 2 done, 2 running, 6 pending, 14 failed\n"), text)
    }
}
