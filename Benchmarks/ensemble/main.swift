// bench-ensemble: tiled ensemble inference on a whole frame, hrtem vs PyTorch, in one run.
// SIZE x SIZE frame (default 4096), MODELS study U-Nets (default 5, different seeds), tiles of
// TILE (default 512) in batches of BATCH (default 4, as `hrtem segment`), THREADS threads (default 2): the mean particle
// probability, the per-pixel standard deviation and entropy, the mask, as `hrtem segment`
// computes them. One untimed warm-up on one tile, then the best of REPEATS (default 1) runs.
// Prints wall and processor seconds and the peak resident memory (VmHWM) of each side.
// Usage: bench-ensemble [--size N] [--models M] [--tile T] [--batch B] [--threads N] [--repeats R] [--no-peer]
// The peer is Benchmarks/peers/torch_ensemble_bench.py run by $HRTEM_TORCH_PYTHON, $HRTEM_PYTHON,
// ./.venv/bin/python3 or python3, whichever first imports torch; it is skipped with a message
// when none does.
import BenchmarkSupport
import Foundation
import Micrograph
import Segmentation

var size = 4096, modelCount = 5, tile = 512, batch = 4, threads = 2, repeats = 1, runPeer = true
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--size": size = Int(arguments.next() ?? "") ?? size
    case "--models": modelCount = Int(arguments.next() ?? "") ?? modelCount
    case "--tile": tile = Int(arguments.next() ?? "") ?? tile
    case "--batch": batch = Int(arguments.next() ?? "") ?? batch
    case "--threads": threads = Int(arguments.next() ?? "") ?? threads
    case "--repeats": repeats = Int(arguments.next() ?? "") ?? repeats
    case "--no-peer": runPeer = false
    default: print("unknown argument \(argument)"); exit(64)
    }
}

// As `hrtem segment` does: min(threads, models) forward passes at once, the threads shared among them.
let concurrentPasses = max(1, min(threads, modelCount))
let networks = (0..<modelCount).map {
    ResidualUNet(architecture: .study, seed: UInt64(1 + $0), compute: ComputeSettings(threads: max(1, threads / concurrentPasses)))
}
var random = SplitMix64(seed: 11)
let frame = Raster(width: size, height: size, pixels: (0..<(size * size)).map { _ in Float(random.nextGaussian()) })
print("bench-ensemble: \(size) x \(size) frame, \(modelCount) study U-Nets, tiles \(tile) (batch \(batch)), \(threads) threads, best of \(repeats)")
print("host load average: \(hostLoadAverage) (timings are noisy when the machine is shared)")
_ = try ensemblePrediction(networks: networks, image: frame.crop(row: 0, column: 0, width: tile, height: tile), tile: tile, batch: batch)
var best = (wall: Double.infinity, processor: 0.0)
var score = 0.0
for _ in 0..<repeats {
    let start = DispatchTime.now().uptimeNanoseconds, processorStart = processorSeconds()
    let prediction = try ensemblePrediction(networks: networks, image: frame, tile: tile, batch: batch,
                                            concurrentPasses: concurrentPasses)
    let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    if wall < best.wall { best = (wall, processorSeconds() - processorStart) }
    score = prediction.meanDeviation
}
let ourPeak = peakResidentMiB()
let tilePasses = Double(modelCount * ((size + tile - 1) / tile) * ((size + tile - 1) / tile))
print(String(format: "hrtem   ensemble: %7.2f s wall  %7.2f s cpu  peak RSS %6.0f MiB (frame alone %.0f MiB)  %.1f ms per tile and model  mean std %.5f",
             best.wall, best.processor, ourPeak, Double(size * size * 4) / 1048576, best.wall * 1000 / tilePasses, score))

guard runPeer else { exit(0) }
let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("peers/torch_ensemble_bench.py")
guard let python = torchPython() else {
    print("PyTorch: not importable (set HRTEM_TORCH_PYTHON=/path/to/python with torch); peer skipped")
    exit(0)
}
let (status, output) = runPython(python, [script.path, String(size), String(modelCount), String(tile), String(threads), String(repeats),
                                          String(batch)])
guard status == 0, let json = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any],
      let wall = json["seconds"] as? Double, let peak = json["peak_rss_mib"] as? Double else {
    print("PyTorch peer failed (status \(status)): \(output)")
    exit(1)
}
print(String(format: "PyTorch ensemble: %7.2f s wall  %7.2f s cpu  peak RSS %6.0f MiB  %.1f ms per tile and model  (torch %@, %@)",
             wall, json["cpu_seconds"] as? Double ?? 0, peak, wall * 1000 / tilePasses, "\(json["torch"] ?? "?")", python))
print(String(format: "hrtem / PyTorch wall time: %.2f", best.wall / wall))
