// One 4096 x 4096 frame through the study's per-frame chain (x-ray removal, flat-field fit and
// division, standardization, 512 x 512 tiling), hrtem vs the NumPy / scikit-image reference
// (Benchmarks/peers/preprocessing_reference.py) in the same run. Single-threaded on both sides
// (the peer runs with OPENBLAS/OMP/MKL threads = 1).
//
//   swift build -c release --product bench-preprocessing && .build/release/bench-preprocessing [SIZE] [RUNS]
//
// Targets: under 0.5 s a frame on one core, at least 5x faster than NumPy.
//   .build/release/bench-preprocessing materialize [FRAMES] [SIZE] [JOBS]
// builds a FRAMES-frame dataset (study recipe) from synthetic DM4 frames in a temporary data
// folder and reports the time and the peak resident memory (target: under 1 GB for 10 frames).
import Catalog
import Foundation
import Micrograph
import Preprocessing

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "materialize" {
    runMaterializeBenchmark(Array(CommandLine.arguments.dropFirst(2)))
    exit(0)
}

let arguments = CommandLine.arguments
let size = arguments.count > 1 ? Int(arguments[1]) ?? 4096 : 4096
let runs = arguments.count > 2 ? Int(arguments[2]) ?? 5 : 5
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func syntheticFrame(size: Int, seed: UInt64) -> Raster<Float> {
    var random = SplitMix64(seed: seed)
    var pixels = [Float](repeating: 0, count: size * size)
    for r in 0..<size {
        let u = Double(r) / Double(size)
        for c in 0..<size {
            let v = Double(c) / Double(size)
            let mean = 2000 * (1.0 + 0.3 * u - 0.2 * v + 0.25 * (u - 0.5) * (u - 0.5))
            pixels[r * size + c] = Float(mean + mean.squareRoot() * random.nextGaussian())
        }
    }
    for _ in 0..<200 { pixels[size + 1 + Int(random.next() % UInt64(size * (size - 2) - 2))] += 20000 }
    return Raster(width: size, height: size, pixels: pixels)
}

/// Thread CPU seconds of `body` (the machine is shared: CPU time is the fairer single-core
/// figure; wall time is printed for the whole chain too).
func seconds(_ body: () -> Void) -> Double {
    var start = timespec(), end = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start)
    body()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &end)
    return Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
}

func wallSeconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

let raw = syntheticFrame(size: size, seed: 7)
var steps: [String: [Double]] = [:]
var totals = [Double]()
var keptValues = 0
for _ in 0..<runs {
    var image = raw
    var model: FlatFieldModel!
    var standardized: Raster<Float>!
    var patches = [Float]()
    let total = seconds {
        steps["x-ray removal", default: []].append(seconds { removeXRays(&image) })
        steps["flat-field fit", default: []].append(seconds { model = fitFlatField(image) })
        steps["divide + standardize", default: []].append(seconds {
            let corrected = flatFieldCorrected(image, model)
            standardized = rescaled(corrected, .standardize).map { Float($0) }
        })
        steps["tiling", default: []].append(seconds {
            patches.reserveCapacity(size * size)
            for origin in tileOrigins(width: size, height: size, patch: 512, stride: 512) {
                appendPatch(standardized, at: origin, patch: 512, to: &patches)
            }
        })
    }
    totals.append(total)
    keptValues = patches.count
    _ = model
}
// The chain as the materializer calls it: preprocessFrame (x-ray + fit + divide + standardize) + tiling.
var chain = [Double](), chainWall = [Double]()
for _ in 0..<runs {
    var patches = [Float]()
    var cpu = 0.0
    chainWall.append(wallSeconds { cpu = seconds {
        let image = preprocessFrame(raw).image
        patches.reserveCapacity(size * size)
        for origin in tileOrigins(width: size, height: size, patch: 512, stride: 512) {
            appendPatch(image, at: origin, patch: 512, to: &patches)
        }
    } })
    chain.append(cpu)
}
print("bench-preprocessing: \(size) x \(size) float32 frame, \(runs) runs, one thread, median CPU time")
func padded(_ text: String) -> String { text + String(repeating: " ", count: max(0, 28 - text.count)) }
for name in ["x-ray removal", "flat-field fit", "divide + standardize", "tiling"] {
    print("  hrtem  " + padded(name) + String(format: "%8.1f ms", median(steps[name]!) * 1000))
}
let ours = median(chain)
print("  hrtem  " + padded("full chain") + String(format: "%8.1f ms  (wall %.1f ms; %d patch values)", ours * 1000, median(chainWall) * 1000, keptValues))

let python = ProcessInfo.processInfo.environment["HRTEM_PYTHON"]
    ?? (FileManager.default.isExecutableFile(atPath: packageRoot.appendingPathComponent(".venv/bin/python3").path)
        ? packageRoot.appendingPathComponent(".venv/bin/python3").path : "python3")
let script = packageRoot.appendingPathComponent("Benchmarks/peers/preprocessing_reference.py").path
let process = Process()
process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
process.arguments = ["OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1", python, script, "bench", "\(size)", "\(max(1, min(runs, 3)))"]
let pipe = Pipe()
process.standardOutput = pipe
do {
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    if process.terminationStatus == 0,
       let result = try JSONSerialization.jsonObject(with: data) as? [String: Any],
       let peer = result["median_seconds"] as? Double {
        let wall = result["median_wall_seconds"] as? Double ?? .nan
        print("  numpy  " + padded("full chain") + String(format: "%8.1f ms  (wall %.1f ms; NumPy + scikit-image, %@)", peer * 1000, wall * 1000, python as NSString))
        print(String(format: "  speed-up (CPU time): %.1fx   targets: < 500 ms and >= 5x", peer / ours))
    } else {
        print("  numpy  peer unavailable (\(python) \(script) exited \(process.terminationStatus)); run `make peers` or set HRTEM_PYTHON")
    }
} catch {
    print("  numpy  peer unavailable: \(error)")
}

func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024   // Linux reports KiB
}

func runMaterializeBenchmark(_ arguments: [String]) {
    let frames = arguments.count > 0 ? Int(arguments[0]) ?? 10 : 10
    let size = arguments.count > 1 ? Int(arguments[1]) ?? 4096 : 4096
    let jobs = arguments.count > 2 ? Int(arguments[2]) ?? 2 : 2
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("hrtem-bench-materialize-\(getpid())")
    defer { try? FileManager.default.removeItem(at: root) }
    do {
        let dataFolder = DataFolder(url: root.appendingPathComponent("data"))
        let files = root.appendingPathComponent("files")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        let store = try CatalogStore(folder: dataFolder)
        for f in 0..<frames {
            // one frame in memory at a time while writing the inputs
            let raster = syntheticFrame(size: size, seed: UInt64(100 + f))
            var label = [UInt8](repeating: 0, count: size * size)
            var random = SplitMix64(seed: UInt64(f))
            for _ in 0..<(size / 64) {
                let cr = Int(random.next() % UInt64(size)), cc = Int(random.next() % UInt64(size)), radius = 40
                for r in max(0, cr - radius)..<min(size, cr + radius) {
                    for c in max(0, cc - radius)..<min(size, cc + radius) where (r - cr) * (r - cr) + (c - cc) * (c - cc) <= radius * radius {
                        label[r * size + c] = 255
                    }
                }
            }
            let name = "frame_\(f).dm4"
            try writeDM(raster, to: files.appendingPathComponent(name), pixelSizeNM: 0.02)
            try writePNG(gray8: Raster(width: size, height: size, pixels: label), to: files.appendingPathComponent("frame_\(f)_label.png"))
            let record = try store.upsertFrame(FrameRecord(session: "bench", fileName: name, metadataRow: f, material: "Au",
                                                           path: files.appendingPathComponent(name).path,
                                                           sha256: try sha256Hex(fileAt: files.appendingPathComponent(name)),
                                                           width: size, height: size))
            try store.upsertLabel(LabelRecord(frameId: record.id!, source: "png", path: files.appendingPathComponent("frame_\(f)_label.png").path))
        }
        let before = peakResidentMegabytes()
        let recipe = DatasetRecipe(name: "bench", query: "material = \"Au\"")
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try DatasetMaterializer.build(recipe, store: store, dataFolder: dataFolder, jobs: jobs) { print("  | " + $0) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        print("bench-preprocessing materialize: \(frames) frames of \(size) x \(size), jobs \(jobs)")
        print(String(format: "  build %.2f s (%.0f ms a frame), %d patches", seconds, seconds * 1000 / Double(frames), result.version.patchCount))
        print(String(format: "  peak resident memory %.0f MB (%.0f MB before the build, while writing the inputs); target < 1024 MB", peakResidentMegabytes(), before))
    } catch {
        print("bench-preprocessing materialize failed: \(error)")
        exit(1)
    }
}
