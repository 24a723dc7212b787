// bench-synthesis: time to generate one synthetic HRTEM frame (hrtem vs a NumPy/SciPy peer
// doing the same image formation, Benchmarks/peers/synth_frame.py), in one run.
//
//   swift build -c release --product bench-synthesis && .build/release/bench-synthesis
//   (or `make bench-synthesis`; HRTEM_PYTHON picks the peer's Python)
//
// Condition: Au, 5 nm spheres, 0.02 nm/px, 423 e/A^2, a session with uneven illumination.
// hrtem uses every core for a frame's rows (the bytes do not depend on the thread count); the
// CPU time per frame is printed too so the single-threaded NumPy figure can be compared fairly.
import Foundation
import Micrograph
import Synthesis

func cpuSeconds() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

let condition = SynthesisCondition(material: .gold, particleSize: 5, pixelScale: 0.02, dose: 423)
let session = SessionProfile(index: 0, seed: 1)
print("bench-synthesis: one synthetic frame (\(condition)), \(ProcessInfo.processInfo.activeProcessorCount) cores")

for (size, runs) in [(1024, 9), (4096, 3)] {
    var wall = [Double](), cpu = [Double]()
    var particles = 0
    for run in 0..<runs {
        let cpuStart = cpuSeconds()
        let start = DispatchTime.now().uptimeNanoseconds
        let frame = SyntheticFrame(width: size, height: size, condition: condition, session: session,
                                   random: SplitMix64(seed: UInt64(run)))
        wall.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        cpu.append((cpuSeconds() - cpuStart) * 1000)
        particles = frame.particles.count
    }
    print(String(format: "hrtem  %5d x %-5d  median %8.1f ms wall, %8.1f ms CPU  (%d runs, %d particles)",
                 size, size, median(wall), median(cpu), runs, particles))
}

let python = ProcessInfo.processInfo.environment["HRTEM_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "python3"
let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("peers/synth_frame.py").path
for (size, runs) in [(1024, 5)] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [python, script, "--size", "\(size)", "--runs", "\(runs)"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do {
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let ms = json["median_ms"] as? Double else {
            print("numpy  peer unavailable (\(python) could not run \(script); install numpy and scipy, e.g. `make peers`)")
            continue
        }
        print(String(format: "numpy  %5d x %-5d  median %8.1f ms wall, single-threaded  (%d runs)", size, size, ms, runs))
    } catch {
        print("numpy  peer unavailable: \(error)")
    }
}
