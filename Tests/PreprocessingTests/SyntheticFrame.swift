import Micrograph
import Preprocessing

/// A seeded synthetic raw frame for preprocessing tests: uneven illumination (a smooth
/// quadratic the Bezier surface can represent), darker disc-shaped particles, Gaussian counting
/// noise, a few negative pixels and injected x-ray hits (one on the border, two touching, two
/// of equal value). The label is the discs' support (0/255).
struct SyntheticFrame {
    var image: Raster<Float>
    var label: Raster<UInt8>
    var hits: [Int]

    init(size: Int, seed: UInt64, hitCount: Int = 40, particles: Int = 30) {
        var random = SplitMix64(seed: seed)
        var labelPixels = [UInt8](repeating: 0, count: size * size)
        for _ in 0..<particles {
            let cr = random.nextUnitDouble() * Double(size), cc = random.nextUnitDouble() * Double(size)
            let radius = 4 + random.nextUnitDouble() * Double(size) / 24
            let r0 = max(0, Int(cr - radius)), r1 = min(size - 1, Int(cr + radius) + 1)
            let c0 = max(0, Int(cc - radius)), c1 = min(size - 1, Int(cc + radius) + 1)
            for r in r0...r1 {
                for c in c0...c1 where (Double(r) - cr) * (Double(r) - cr) + (Double(c) - cc) * (Double(c) - cc) <= radius * radius {
                    labelPixels[r * size + c] = 255
                }
            }
        }
        var pixels = [Float](repeating: 0, count: size * size)
        for r in 0..<size {
            let u = Double(r) / Double(size)
            for c in 0..<size {
                let v = Double(c) / Double(size)
                let illumination = 1.0 + 0.3 * u - 0.2 * v + 0.25 * (u - 0.5) * (u - 0.5) + 0.1 * u * v
                let mean = 2000 * illumination * (labelPixels[r * size + c] != 0 ? 0.8 : 1.0)
                pixels[r * size + c] = Float(mean + mean.squareRoot() * random.nextGaussian())
            }
        }
        for _ in 0..<10 { pixels[Int(random.next() % UInt64(size * size))] = -Float(1 + random.nextUnitDouble() * 50) }
        var hits = [Int]()
        for _ in 0..<hitCount {
            let r = 1 + Int(random.next() % UInt64(size - 2)), c = 1 + Int(random.next() % UInt64(size - 2))
            hits.append(r * size + c)
        }
        hits.append(0 * size + size / 3)                  // top border
        hits.append((size / 2) * size + size / 2)         // two touching hits
        hits.append((size / 2) * size + size / 2 + 1)
        for (k, index) in hits.enumerated() {
            pixels[index] = Float(6000 + 20000 * random.nextUnitDouble())
            if k == 1 { pixels[index] = pixels[hits[0]] }  // equal values: raster order decides
        }
        image = Raster(width: size, height: size, pixels: pixels)
        label = Raster(width: size, height: size, pixels: labelPixels)
        self.hits = hits
    }
}
