// bench-trainer: the study's residual U-Net (130,682 parameters) on the CPU, hrtem vs PyTorch,
// in one run. Times a training step (forward, backward, Adam) per image at 512 x 512 batch 8 and
// 256 x 256 batch 32, and inference per image at 512 x 512 (batch 8), with THREADS threads
// (default 2), best of REPEATS (default 3) after one warm-up.
// Usage: bench-trainer [--threads N] [--repeats R] [--no-peer] [--profile] [--isa generic|avx2|avx512] [--inference-only] [--direct-limit IN_x_OUT]
// The peer is Benchmarks/peers/torch_unet_bench.py run by $HRTEM_TORCH_PYTHON, $HRTEM_PYTHON,
// ./.venv/bin/python3 or python3, whichever first imports torch.
import BenchmarkSupport
import Foundation
import Micrograph
import Segmentation

var threads = 2, repeats = 3, runPeer = true, runTraining = true, profile = false
var compute = ComputeSettings()
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--threads": threads = Int(arguments.next() ?? "") ?? threads
    case "--repeats": repeats = Int(arguments.next() ?? "") ?? repeats
    case "--no-peer": runPeer = false
    case "--profile": profile = true
    case "--isa": compute.instructionSet = KernelInstructionSet(name: arguments.next() ?? "") ?? .best
    case "--inference-only": runTraining = false; runPeer = false
    case "--direct-limit": compute.directLimit = Int(arguments.next() ?? "") ?? compute.directLimit
    default: print("unknown argument \(argument)"); exit(64)
    }
}
compute.threads = threads

/// Wall seconds of the fastest of `repeats` runs after a warm-up, and the processor seconds of
/// that run (steadier than wall time on a shared machine).
func seconds(repeats: Int, _ body: () -> Void) -> (wall: Double, processor: Double) {
    body()
    var best = (wall: Double.infinity, processor: 0.0)
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds, processorStart = processorSeconds()
        body()
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if wall < best.wall { best = (wall, processorSeconds() - processorStart) }
    }
    return best
}

/// Multiply-adds x 2 of every convolution in one forward pass of one image.
func forwardFlops(_ network: ResidualUNet, size: Int) -> Double {
    var total = 0.0
    var side = size
    let a = network.architecture
    var channels = a.inputChannels
    func block(_ cin: Int, _ cout: Int, _ s: Int) -> Double {
        let k2 = Double(a.kernel * a.kernel), pixels = Double(s * s)
        return 2 * pixels * (Double(cin * cout) * k2 + Double(cout * cout) * k2 + Double(cin * cout))
    }
    for width in a.widths { total += block(channels, width, side); channels = width; side /= 2 }
    total += block(channels, a.bottleneckWidth, side)
    channels = a.bottleneckWidth
    for width in a.widths.reversed() { side *= 2; total += block(width + channels, width, side); channels = width }
    total += 2 * Double(side * side * channels * a.classes)
    return total
}

let network = ResidualUNet(architecture: .study, seed: 1, compute: compute)
let trainer = TrainingStep(network: network, learningRate: 1e-4)
var results: [String: Double] = [:]
var random = SplitMix64(seed: 7)
print("bench-trainer: study U-Net (\(network.parameterCount) parameters), \(threads) threads, best of \(repeats), "
      + "kernels \(compute.instructionSet.name)")
print("host load average: \(hostLoadAverage) (timings are noisy when the machine is shared)")
for (size, batch) in runTraining ? [(512, 8), (256, 32)] : [] {
    let input = Tensor([batch, 1, size, size])
    for i in 0..<input.count { input[i] = Float(random.nextGaussian()) }
    let labels = (0..<(batch * size * size)).map { _ in UInt8(random.nextUnitDouble() > 0.7 ? 1 : 0) }
    TensorTraffic.reset()
    let (time, processor) = seconds(repeats: repeats) { _ = trainer.step(input: input, labels: labels) }
    if profile {
        let operations = OperationProfile()
        network.compute.profile = operations
        let start = DispatchTime.now().uptimeNanoseconds
        _ = trainer.step(input: input, labels: labels)
        let total = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        network.compute.profile = nil
        print("profile of one step at \(size) x \(size) batch \(batch): ms per image (share of the step)")
        for entry in operations.entries.sorted(by: { $0.seconds > $1.seconds }) {
            print(String(format: "  %-40@ %8.2f ms  %5.1f%%  (%d calls)", entry.name as NSString,
                         entry.seconds * 1000 / Double(batch), 100 * entry.seconds / total, entry.calls))
        }
    }
    let bytes = Double(TensorTraffic.bytesAllocated) / Double(repeats + 1)
    let perImage = time * 1000 / Double(batch)
    let flops = 3 * forwardFlops(network, size: size) * Double(batch)
    results["train_\(size)_b\(batch)_ms_per_image"] = perImage
    print(String(format: "hrtem   train %3d x %3d batch %2d: %8.1f ms/image  %6.1f GFLOP/s  %6.1f GB/s (tensor bytes written x2)  cpu %.1f ms/image",
                 size, size, batch, perImage, flops / time / 1e9, 2 * bytes / time / 1e9, processor * 1000 / Double(batch)))
}
do {
    let input = Tensor([8, 1, 512, 512])
    for i in 0..<input.count { input[i] = Float(random.nextGaussian()) }
    TensorTraffic.reset()
    let (time, processor) = seconds(repeats: repeats) { _ = network.forward(input, training: false) }
    let bytes = Double(TensorTraffic.bytesAllocated) / Double(repeats + 1)
    let perImage = time * 1000 / 8
    results["infer_512_ms_per_image"] = perImage
    print(String(format: "hrtem   infer 512 x 512 batch  8: %8.1f ms/image  %6.1f GFLOP/s  %6.1f GB/s (tensor bytes written x2)  cpu %.1f ms/image",
                 perImage, forwardFlops(network, size: 512) * 8 / time / 1e9, 2 * bytes / time / 1e9, processor * 1000 / 8))
}
let ourPeak = peakResidentMiB()
print(String(format: "hrtem   peak RSS (VmHWM): %.0f MiB", ourPeak))

guard runPeer else { exit(0) }
let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("peers/torch_unet_bench.py")
guard let python = torchPython() else {
    print("PyTorch: not importable (set HRTEM_TORCH_PYTHON); the issue's figures for this kind of machine are 190 ms/image (train 512) and 40 ms/image (inference), stated, not measured here")
    exit(0)
}
let (status, output) = runPython(python, [script.path, String(threads), String(repeats)])
guard status == 0, let json = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] else {
    print("PyTorch peer failed (status \(status)): \(output)")
    exit(1)
}
print("PyTorch \(json["torch"] ?? "?") (\(python)), \(threads) threads:")
let layouts = ["default", "channels_last"].compactMap { name in (json[name] as? [String: Double]).map { (name, $0) } }
for key in ["train_512_b8_ms_per_image", "train_256_b32_ms_per_image", "infer_512_ms_per_image"] {
    let figures = layouts.map { "\($0.0) \(String(format: "%.1f", $0.1[key] ?? .nan))" }.joined(separator: ", ")
    let best = layouts.compactMap { $0.1[key] }.min() ?? .nan
    let ours = results[key] ?? .nan
    print(String(format: "  %-28@ %@ ms/image -> best %.1f; hrtem %.1f; speed-up %.2fx", key as NSString, figures as NSString, best, ours, best / ours))
}
print(String(format: "PyTorch peak RSS (ru_maxrss): %.0f MiB", json["peak_rss_mib"] as? Double ?? .nan))
