import ArgumentParser
import Experiments
import Foundation

extension MatrixCommand {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Where each unit of a plan stands: pending, running, done or failed, with its log.",
            discussion: """
            Reads the plan's results folder, the runs `run-unit` recorded beside it (who ran a unit, \
            its log, its error) and the jobs the plan's submit scripts noted in submitted.tsv; when \
            `squeue` answers, also the queue (a unit in the queue is pending or running; a submitted \
            unit that left the queue without a result failed). An evaluation whose model failed is \
            failed too: it cannot run until the model is trained.

            Examples:
              hrtem matrix status --plan slurm-run/plan.json
              hrtem matrix status --plan slurm-run/plan.json --only failed
            """)

        @OptionGroup var data: DataOptions
        @Option(help: "The plan file (plan.json).") var plan: String
        @Option(help: "Results folder the units write (default: results/ beside the plan).") var results: String?
        @Option(help: "Show only units in this state: pending, running, done or failed.") var only: UnitStatus.State?

        func run() throws {
            let workspace = MatrixCLI.workspace(data.folder)
            let status = try workspace.status(planFile: MatrixCLI.absoluteURL(plan), resultsFolder: results.map(MatrixCLI.absoluteURL))
            if case .unavailable(let reason) = status.queue {
                MatrixCLI.printError("note: \(reason); states come from the results folder alone")
            }
            print("plan \(status.plan.id) (\(status.plan.name))")
            let units = only.map { state in status.units.filter { $0.state == state } } ?? status.units
            print(PlanStatus.text(units), terminator: "")
        }
    }

    struct Resubmit: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "resubmit",
            abstract: "Submit the failed units of a plan emitted for Slurm again.",
            discussion: """
            Writes resubmit-N.sh beside the plan's scripts and runs it: a training array over the \
            failed training units, each of their evaluations after its model (afterok on that task), \
            the other failed evaluations, then collect after all of them. Fix the cause first \
            (`hrtem matrix status` shows each failed unit's error and log).

            Examples:
              hrtem matrix resubmit --plan slurm-run/plan.json --failed
              hrtem matrix resubmit --plan slurm-run/plan.json --failed --dry-run
            """)

        @OptionGroup var data: DataOptions
        @Option(help: "The plan file (plan.json) in a folder written by --emit-slurm.") var plan: String
        @Option(help: "Results folder the units write (default: results/ beside the plan).") var results: String?
        @Flag(help: "Resubmit the units `hrtem matrix status` shows as failed.") var failed = false
        @Flag(help: "Write the script and print it, submit nothing.") var dryRun = false

        func validate() throws {
            guard failed else { throw ValidationError("say which units to resubmit: --failed") }
        }

        func run() throws {
            let workspace = MatrixCLI.workspace(data.folder)
            let planFile = MatrixCLI.absoluteURL(plan)
            let status = try workspace.status(planFile: planFile, resultsFolder: results.map(MatrixCLI.absoluteURL))
            if case .unavailable(let reason) = status.queue {
                MatrixCLI.printError("note: \(reason); failed units are judged from the results folder alone")
            }
            guard let resubmission = try workspace.writeResubmission(planFile: planFile, plan: status.plan, statuses: status.units) else {
                print("nothing to resubmit: no unit of plan \(status.plan.id) failed")
                return
            }
            print("resubmitting \(resubmission.units.count) failed unit(s) with \(resubmission.script.path)")
            if dryRun {
                print(try String(contentsOf: resubmission.script, encoding: .utf8), terminator: "")
                return
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["bash", resubmission.script.path]
            try process.run()
            process.waitUntilExit()
            if process.terminationStatus != 0 {
                MatrixCLI.printError("\(resubmission.script.path) failed (exit \(process.terminationStatus))")
                throw ExitCode(process.terminationStatus)
            }
        }
    }
}

extension UnitStatus.State: ExpressibleByArgument {}
