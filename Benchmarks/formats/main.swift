// bench-formats: reading 4096 x 4096 float32 DM3 and DM4 frames (hrtem vs ncempy, same run),
// MRC and Velox EMD frames (hrtem vs RosettaSciIO, same run) and the ingest rate of a folder
// of frames.
//
//   swift build -c release --product bench-formats && HRTEM_PYTHON=.venv/bin/python3 .build/release/bench-formats
//   (or `make bench-formats`). Options: --frames N (ingest folder size, default 8), --repeats N.
// Files are written to a temporary folder and read once before timing, so every figure is a
// read from the page cache. Targets: >= 1 GB/s, >= 5x ncempy.
import Catalog
import Foundation
import Micrograph

let arguments = CommandLine.arguments
func option(_ name: String, _ fallback: Int) -> Int {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count, let v = Int(arguments[i + 1]) else { return fallback }
    return v
}
let repeats = option("--repeats", 7)
let ingestFrames = option("--frames", 8)
let side = 4096
let python = ProcessInfo.processInfo.environment["HRTEM_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "python3"
let peerScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("peers/formats_ncempy.py")
let rosettaScript = peerScript.deletingLastPathComponent().appendingPathComponent("formats_rosettasciio.py")

let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hrtem-bench-formats-\(ProcessInfo.processInfo.processIdentifier)")
try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: folder) }

var random = SplitMix64(seed: 4096)
let raster = Raster(width: side, height: side, pixels: (0..<(side * side)).map { _ in Float(random.nextUnitDouble() * 4000) })
let bytes = Double(side * side * 4)

func median(_ values: [Double]) -> Double { let s = values.sorted(); return s[s.count / 2] }
func time(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

print("bench-formats: \(side) x \(side) float32 (\(Int(bytes) >> 20) MiB of pixels), median of \(repeats), page cache warm")
print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores (shared; timings are noisy under contention)")
var files = [URL]()
for version in [DMVersion.dm3, .dm4] {
    let url = folder.appendingPathComponent("frame.\(version == .dm3 ? "dm3" : "dm4")")
    try writeDM(raster, to: url, version: version, pixelSizeNM: 0.02, tags: ["Microscope Info.Indicated Magnification": 330000])
    files.append(url)
}

var hrtemFrameSeconds = [String: Double]()
@MainActor func timeHrtem(_ url: URL) throws {
    _ = try readFrame(at: url)  // warm the page cache
    var checksum = 0.0
    let frameTime = median(try (0..<repeats).map { _ in try time { checksum += Double(try readFrame(at: url).raster.pixels[12345]) } })
    let rawTime = median(try (0..<repeats).map { _ in try time { checksum += Double(try readMicrograph(at: url).data.bytes[99]) } })
    let headerTime = median(try (0..<repeats).map { _ in try time { checksum += Double(try readMicrographHeader(at: url).width) } })
    hrtemFrameSeconds[url.lastPathComponent] = frameTime
    print(String(format: "hrtem %@: readFrame (Float) %.1f ms = %.2f GB/s; readMicrograph (raw bytes) %.1f ms = %.2f GB/s; header only %.3f ms",
                 url.lastPathComponent, frameTime * 1e3, bytes / frameTime / 1e9, rawTime * 1e3, bytes / rawTime / 1e9, headerTime * 1e3))
    precondition(checksum.isFinite)
}
for url in files { try timeHrtem(url) }

/// Runs a peer script printing one JSON line per file ({"file", "median_s"}) and prints its
/// figure beside hrtem's.
@MainActor func runPeer(_ name: String, _ script: URL, _ arguments: [String], target: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [python, script.path] + arguments
    let pipe = Pipe(), errors = Pipe()
    process.standardOutput = pipe
    process.standardError = errors
    do {
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            print("\(name): unavailable (\(python) failed: \(errorText.split(separator: "\n").last ?? "")); set HRTEM_PYTHON or run `make peers`")
        }
        for line in String(decoding: output, as: UTF8.self).split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let path = object["file"] as? String, let seconds = object["median_s"] as? Double else { continue }
            let file = URL(fileURLWithPath: path).lastPathComponent
            let ours = hrtemFrameSeconds[file] ?? .nan
            print(String(format: "%@ %@: %.1f ms = %.2f GB/s -> hrtem readFrame is %.1fx faster (%@)",
                         name, file, seconds * 1e3, bytes / seconds / 1e9, seconds / ours, target))
        }
    } catch {
        print("\(name): could not run \(python): \(error)")
    }
}

// ncempy in the same run.
runPeer("ncempy", peerScript, [String(max(3, repeats / 2))] + files.map(\.path), target: "target >= 5x")

// MRC and Velox EMD: hrtem beside RosettaSciIO on the same files.
let mrc = folder.appendingPathComponent("frame.mrc")
try writeMRC([raster], to: mrc, pixelSizeNM: 0.02)
let emd = folder.appendingPathComponent("frame.emd")
try writeVeloxEMD([VeloxImageSignal(title: "BM-Ceta", frames: [raster], pixelSizeNM: 0.02)], to: emd)
for url in [mrc, emd] { try timeHrtem(url) }
runPeer("rosettasciio", rosettaScript, ["time", String(max(3, repeats / 2)), mrc.path, emd.path], target: "target >= 1 GB/s for hrtem")

// Ingest rate: a NERSC-style folder of frames, headers + SHA-256 in parallel + catalog rows.
let mirror = folder.appendingPathComponent("mirror/2022_11_09 Au on UTC")
for i in 0..<ingestFrames {
    let name = String(format: "20221109_Au_UTC_330kx_2640e_0p1596s_%02d.dm3", i + 1)
    try writeDM(raster, to: mirror.appendingPathComponent(name), version: .dm3, pixelSizeNM: 0.02)
}
let data = DataFolder(url: folder.appendingPathComponent("hrtem-data"))
let store = try CatalogStore(folder: data)
let totalBytes = Double(ingestFrames) * (bytes + 4096)
for jobs in [1, ProcessInfo.processInfo.activeProcessorCount] {
    let fresh = try CatalogStore(file: folder.appendingPathComponent("catalog-\(jobs).sqlite"))
    var report: IngestReport?
    let seconds = try time { report = try Ingester(jobs: jobs).ingest(folder: folder.appendingPathComponent("mirror"), into: fresh) }
    print(String(format: "ingest %d frames (%.0f MB), %d job(s): %.2f s = %.1f frames/s, %.2f GB/s hashed (%d new)",
                 ingestFrames, totalBytes / 1e6, jobs, seconds, Double(ingestFrames) / seconds, totalBytes / seconds / 1e9,
                 report?.framesAdded.count ?? 0))
}
_ = store
let again = try CatalogStore(file: folder.appendingPathComponent("catalog-1.sqlite"))
let rerun = try time { _ = try Ingester().ingest(folder: folder.appendingPathComponent("mirror"), into: again) }
print(String(format: "re-ingest (unchanged files, no hashing): %.1f ms for %d frames", rerun * 1e3, ingestFrames))
