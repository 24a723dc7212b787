// bench-torch-import: reading and importing the study's 50 published PyTorch checkpoints, hrtem
// vs torch.load, in one run, on one core. Times (best of REPEATS after a warm-up):
//   read    - TorchCheckpoint.read of every file (zip + restricted unpickler + tensors)
//   import  - `hrtem model import` without the process start: read, architecture from the
//             shapes, load into the network, write model.safetensors + model.json, register
//             in a fresh catalog
// and the peer, torch.load of the same files (Benchmarks/peers/torch_load.py) run by
// $HRTEM_TORCH_PYTHON, $HRTEM_PYTHON, ./.venv/bin/python3 or python3, whichever imports torch.
// Usage: bench-torch-import [--models DIR] [--repeats R] [--no-peer]
//   DIR defaults to ../shared/reference/study-models (the study's files, never copied here).
import Catalog
import Experiments
import Foundation
import Micrograph
import TorchArchive

var modelsPath = "../shared/reference/study-models", repeats = 5, runPeer = true
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--models": modelsPath = arguments.next() ?? modelsPath
    case "--repeats": repeats = Int(arguments.next() ?? "") ?? repeats
    case "--no-peer": runPeer = false
    default: print("unknown argument \(argument)"); exit(64)
    }
}

let folder = URL(fileURLWithPath: modelsPath)
guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else {
    print("no checkpoint folder at \(folder.path): pass --models DIR (the study's *_model.h5 files)")
    exit(0)
}
let files = names.filter { $0.hasSuffix(".h5") || $0.hasSuffix(".pt") || $0.hasSuffix(".pth") }.sorted()
    .map { folder.appendingPathComponent($0) }
guard !files.isEmpty else { print("no checkpoints in \(folder.path)"); exit(0) }
let totalBytes = files.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1.path)[.size] as? Int) ?? 0) }

/// Processor seconds (user + system) this process has used.
func processorSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// Best wall time of `repeats` runs after one warm-up, with that run's processor seconds.
@MainActor func best(_ body: () throws -> Void) rethrows -> (wall: Double, processor: Double) {
    try body()
    var result = (wall: Double.infinity, processor: 0.0)
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds, processorStart = processorSeconds()
        try body()
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if wall < result.wall { result = (wall, processorSeconds() - processorStart) }
    }
    return result
}

do {
    var tensors = 0
    let read = try best {
        tensors = 0
        for file in files { tensors += try TorchCheckpoint.read(from: file).tensors.count }
    }
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("bench-torch-import-\(ProcessInfo.processInfo.processIdentifier)")
    defer { try? FileManager.default.removeItem(at: work) }
    var run = 0
    let imported = try best {
        run += 1
        let data = DataFolder(url: work.appendingPathComponent("data-\(run)"))
        let catalog = try CatalogStore(folder: data)
        _ = try ModelImporter.importModels(files: files, folder: data, catalog: catalog)
    }
    print("\(files.count) checkpoints, \(totalBytes / 1024) KiB, \(tensors) tensors; best of \(repeats), one thread:")
    print(String(format: "  hrtem read    %7.3f s  (%.3f s processor)", read.wall, read.processor))
    print(String(format: "  hrtem import  %7.3f s  (%.3f s processor; read + check + write + catalog)", imported.wall, imported.processor))
} catch {
    print("hrtem failed: \(error)")
    exit(1)
}

guard runPeer else { exit(0) }
let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("peers/torch_load.py")
let environment = ProcessInfo.processInfo.environment
let candidates = [environment["HRTEM_TORCH_PYTHON"], environment["HRTEM_PYTHON"], ".venv/bin/python3", "python3"].compactMap { $0 }

func runPython(_ python: String, _ args: [String]) -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [python] + args
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    guard (try? process.run()) != nil else { return (127, "") }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

guard let python = candidates.first(where: { runPython($0, ["-c", "import torch"]).0 == 0 }) else {
    print("  torch.load     (skipped: none of \(candidates.joined(separator: ", ")) imports torch; set HRTEM_TORCH_PYTHON)")
    exit(0)
}
let (status, output) = runPython(python, [script.path, String(repeats)] + files.map(\.path))
guard status == 0, let line = output.split(separator: "\n").last,
      let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
      let seconds = json["seconds"] as? Double else {
    print("  torch.load failed (status \(status)): \(output)")
    exit(1)
}
print(String(format: "  torch.load    %7.3f s  (%.3f s processor; PyTorch %@, %@ tensors, one thread, %@)", seconds,
             json["processor"] as? Double ?? 0, "\(json["torch"] ?? "?")", "\(json["tensors"] ?? "?")", python))
