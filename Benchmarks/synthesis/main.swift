import Foundation
import Micrograph
import Synthesis

let condition = SynthesisCondition(material: .gold, particleSize: 5, pixelScale: 0.02, dose: 423)
let session = SessionProfile(index: 0, seed: 1)
var times = [Double]()
for trial in 0..<7 {
    let start = DispatchTime.now().uptimeNanoseconds
    let frame = SyntheticFrame(width: 1024, height: 1024, condition: condition, session: session,
                               random: SplitMix64(seed: UInt64(trial)))
    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    if trial == 0 { print("particles \(frame.particles.count), hits \(frame.xrayHits.count)") }
}
times.sort()
print("median ms", times[times.count / 2])
if let dump = ProcessInfo.processInfo.environment["SYNTH_DUMP"] {
    var index = 0
    for material in [Material.gold, .silver, .cadmiumSelenide] {
        for (ps, dose) in [(0.02, 80.0), (0.02, 884.0), (0.042, 80.0), (0.042, 884.0)] {
            let c = SynthesisCondition(material: material, particleSize: material == .gold ? 2.2 : 5, pixelScale: ps, dose: dose)
            let f = SyntheticFrame(width: 512, height: 512, condition: c, session: SessionProfile(index: 0, seed: 3), random: SplitMix64(seed: 9))
            try! writeNPY(NPYArray(shape: [512, 512], float32: f.counts.pixels), to: URL(fileURLWithPath: "\(dump)/f\(index).npy"))
            try! writeNPY(NPYArray(shape: [512, 512], uint8: f.label.pixels), to: URL(fileURLWithPath: "\(dump)/l\(index).npy"))
            index += 1
        }
    }
}
