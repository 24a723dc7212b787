import Foundation
import Micrograph
@testable import Preprocessing
import XCTest

final class PreprocessingTests: XCTestCase {
    func testOrderStatisticsMatchASort() {
        var random = SplitMix64(seed: 11)
        var values = (0..<10_001).map { _ in Float(random.nextGaussian() * 1000) }
        values[17] = -0.0; values[18] = 0; values[19] = 5; values[20] = 5
        let sorted = values.sorted()
        let ranks = [0, 1, 17, 5000, 5001, 9999, 10_000]
        let selected = values.withUnsafeBufferPointer { orderStatistics($0, ranks: ranks) }
        XCTAssertEqual(selected, ranks.map { sorted[$0] })
        let doubles = values.map { Double($0) * 1.000_000_1 }
        let sortedDoubles = doubles.sorted()
        XCTAssertEqual(doubles.withUnsafeBufferPointer { orderStatistics($0, ranks: ranks) }, ranks.map { sortedDoubles[$0] })
        let even = Array(values.dropLast())
        let evenSorted = even.sorted()
        XCTAssertEqual(even.withUnsafeBufferPointer { median($0) },
                       (Double(evenSorted[4999]) + Double(evenSorted[5000])) / 2)
    }

    func testPercentileFollowsNumpyLinearRule() {
        let values: [Double] = [10, 1, 7, 3, 4]   // sorted 1 3 4 7 10
        // np.percentile([10,1,7,3,4], [1, 50, 99]) = [1.08, 4.0, 9.88]
        let p = values.withUnsafeBufferPointer { percentiles($0, [1, 50, 99]) }
        XCTAssertEqual(p[0], 1.08, accuracy: 1e-12)
        XCTAssertEqual(p[1], 4.0, accuracy: 1e-12)
        XCTAssertEqual(p[2], 9.88, accuracy: 1e-12)
    }

    func testXRayRemovalFindsEveryHitAndLeavesNoOutlier() {
        var frame = SyntheticFrame(size: 128, seed: 3)
        let before = frame.image
        let report = removeXRays(&frame.image)
        XCTAssertEqual(report.negativePixelsClipped, 10)
        XCTAssertEqual(report.borderOutliers, 1)
        XCTAssertGreaterThanOrEqual(report.totalOutliers, frame.hits.count)
        for index in frame.hits { XCTAssertLessThan(frame.image.pixels[index], 4000, "hit at \(index) left in place") }
        XCTAssertTrue(frame.image.pixels.allSatisfy { $0 >= 0 })
        // an untouched interior pixel is unchanged
        let quiet = (0..<before.count).first { i in before.pixels[i] > 0 && before.pixels[i] < 3000 && !frame.hits.contains(i) }!
        XCTAssertEqual(frame.image.pixels[quiet], before.pixels[quiet])
        // neighbour mean: the later of two touching hits uses the fixed value of the earlier
        let size = 128, a = frame.hits[frame.hits.count - 2], b = frame.hits[frame.hits.count - 1]
        let (first, second) = before.pixels[a] >= before.pixels[b] ? (a, b) : (b, a)
        var s = 0.0
        for dr in -1...1 { for dc in -1...1 where dr != 0 || dc != 0 { s += Double(frame.image.pixels[second + dr * size + dc]) } }
        XCTAssertEqual(frame.image.pixels[second], Float(s / 8))
        _ = first
    }

    func testFlatFieldRecoversAnExactBezierSurface() {
        let size = 256
        let truth: [Double] = [1.0, 1.2, 0.9, 1.1, 1.3, 1.0, 0.8, 1.05, 1.2].map { $0 * 1000 }
        let surface = FlatFieldModel(width: size, height: size, coefficients: truth).background()
        let image = surface.map { Float($0) }
        for iterations in [1, 2, 3] {
            let fit = fitFlatField(image, iterations: iterations)
            for (a, b) in zip(fit.coefficients, truth) { XCTAssertEqual(a, b, accuracy: 1e-3, "iterations \(iterations)") }
        }
        let corrected = flatFieldCorrected(image, fitFlatField(image))
        XCTAssertEqual(corrected.pixels.min()!, 1, accuracy: 1e-6)
        XCTAssertEqual(corrected.pixels.max()!, 1, accuracy: 1e-6)
    }

    func testRescalingsOfAKnownVector() {
        let image = Raster<Double>(width: 4, height: 1, pixels: [1, 2, 3, 4])
        XCTAssertEqual(rescaled(image, .normalize).pixels, [0, 1.0 / 3, 2.0 / 3, 1])
        let z = rescaled(image, .standardize).pixels
        let std = (1.25 as Double).squareRoot()
        for (a, b) in zip(z, [-1.5, -0.5, 0.5, 1.5].map { $0 / std }) { XCTAssertEqual(a, b, accuracy: 1e-15) }
        let h = rescaled(image, .histogram).pixels   // p1 = 1.03, p99 = 3.97
        XCTAssertEqual(h[0], 0); XCTAssertEqual(h[3], 1)
        XCTAssertEqual(h[1], (2 - 1.03) / 2.94, accuracy: 1e-12)
    }

    func testFusedFramePipelineEqualsTheStepsInDouble() {
        let frame = SyntheticFrame(size: 128, seed: 5)
        for method in Rescaling.allCases {
            var stepwise = frame.image
            removeXRays(&stepwise)
            let expected = rescaled(flatFieldCorrected(stepwise, fitFlatField(stepwise)), method)
            let fused = preprocessFrame(frame.image, FramePreprocessing(rescaling: method)).image
            for i in 0..<fused.count {
                XCTAssertEqual(Double(fused.pixels[i]), expected.pixels[i], accuracy: 1e-6 * max(1, abs(expected.pixels[i])))
            }
        }
    }

    func testTilingAndPatchFilter() {
        XCTAssertEqual(tileOrigins(width: 4096, height: 4096, patch: 512, stride: 512).count, 64)
        XCTAssertEqual(tileOrigins(width: 1024, height: 512, patch: 256, stride: 128).count, 7 * 3)
        let origins = tileOrigins(width: 8, height: 8, patch: 4, stride: 4)
        XCTAssertEqual(origins, [PatchOrigin(row: 0, column: 0), PatchOrigin(row: 0, column: 4),
                                 PatchOrigin(row: 4, column: 0), PatchOrigin(row: 4, column: 4)])
        var label = Raster<UInt8>(width: 8, height: 8, repeating: 0)
        for r in 0..<3 { for c in 4..<7 { label[r, c] = 255 } }   // 9 pixels in tile 1
        label[7, 7] = 1                                             // 1 pixel in tile 3
        let kept = keptPatches(label: label, patch: 4, stride: 4, minParticlePixels: 8)
        XCTAssertEqual(kept.map(\.origin), [PatchOrigin(row: 0, column: 4)])
        XCTAssertEqual(kept.map(\.particlePixels), [9])
        XCTAssertEqual(keptPatches(label: label, patch: 4, stride: 4, minParticlePixels: 9), [])
        var patch = [UInt8]()
        appendPatch(label, at: PatchOrigin(row: 0, column: 4), patch: 4, to: &patch)
        XCTAssertEqual(patch.filter { $0 != 0 }.count, 9)
    }

    func testLegacyNumpyGeneratorIsBitCompatible() {
        // MT19937 reference: init_genrand(5489) first output 3499211612 (Matsumoto & Nishimura).
        var mt = LegacyNumpyRandom(seed: 5489)
        XCTAssertEqual(mt.nextUInt32(), 3_499_211_612)
        // python: np.random.seed(34522); i = np.arange(14); np.random.shuffle(i)
        XCTAssertEqual(studyShuffle(count: 14), [12, 11, 3, 9, 7, 6, 10, 5, 4, 2, 0, 8, 13, 1])
        XCTAssertEqual(Set(studyShuffle(count: 1000)), Set(0..<1000))
    }

    func testStudyFoldSizes() {
        XCTAssertEqual(arraySplitSizes(count: 430, parts: 5), [86, 86, 86, 86, 86])
        XCTAssertEqual(arraySplitSizes(count: 12, parts: 5), [3, 3, 2, 2, 2])
        let plan355 = studyFolds(count: 355)
        XCTAssertEqual(plan355.folds.map { [$0.train.count, $0.validation.count, $0.test.count] },
                       Array(repeating: [249, 35, 71], count: 5))
        XCTAssertEqual(plan355.folds[0].validation.first, 71)
        XCTAssertEqual(plan355.folds[4].validation, Array(249..<284))   // the last 12.5% before the test block
        XCTAssertEqual(plan355.folds.map(\.seed), [962, 1662, 621, 72115, 45521])
        let plan430 = studyFolds(count: 430)
        XCTAssertEqual(plan430.folds.map { [$0.train.count, $0.validation.count, $0.test.count] },
                       Array(repeating: [301, 43, 86], count: 5))
        for fold in plan430.folds {
            XCTAssertEqual(Set(fold.train + fold.validation + fold.test), Set(0..<430))
        }
        let decoded = try! JSONDecoder().decode(FoldPlan.self, from: plan430.jsonBytes())
        XCTAssertEqual(decoded, plan430)
        XCTAssertTrue(String(decoding: plan430.jsonBytes(), as: UTF8.self).hasPrefix("{\"format\": 1, \"k\": 5, \"rule\": \"study\", \"folds\": ["))
    }

    func testGroupedFoldsNeverLeakAGroup() throws {
        var random = SplitMix64(seed: 9)
        // 23 frames of 1...40 patches, interleaved as the shuffle would leave them grouped per frame
        var groups = [String]()
        for f in 0..<23 { groups += Array(repeating: "frame\(f)", count: 1 + Int(random.next() % 40)) }
        let plan = try groupedFolds(groups: groups, k: 5, rule: .frame)
        XCTAssertEqual(plan.folds.count, 5)
        for fold in plan.folds {
            XCTAssertFalse(fold.test.isEmpty)
            XCTAssertEqual(Set(fold.train + fold.validation + fold.test), Set(0..<groups.count))
            let sets = [fold.train, fold.validation, fold.test].map { Set($0.map { groups[$0] }) }
            XCTAssertTrue(sets[0].isDisjoint(with: sets[1]) && sets[0].isDisjoint(with: sets[2]) && sets[1].isDisjoint(with: sets[2]))
        }
        // every patch is tested exactly once
        XCTAssertEqual(plan.folds.flatMap(\.test).sorted(), Array(0..<groups.count))
        XCTAssertThrowsError(try groupedFolds(groups: ["a", "a", "b"], k: 5, rule: .session))
    }

    func testDihedralAndRotation() {
        let n = 6
        let patch = Raster<Float>(width: n, height: n, pixels: (0..<(n * n)).map(Float.init))
        // np.rot90 (counter-clockwise): out[i, j] = m[j, n-1-i]
        let r90 = dihedral(patch, .rotate90)
        XCTAssertEqual(r90[0, 0], patch[0, n - 1])
        XCTAssertEqual(r90[n - 1, 0], patch[0, 0])
        XCTAssertEqual(Set(DihedralTransform.allCases.map { dihedral(patch, $0).pixels }).count, 8)
        XCTAssertEqual(dihedral(dihedral(patch, .rotate90), .rotate270), patch)
        XCTAssertEqual(dihedral(patch, .flipLRRotate90), dihedral(dihedral(patch, .flipLR), .rotate90))
        let label = Raster<UInt8>(width: n, height: n, pixels: (0..<(n * n)).map { $0 % 3 == 0 ? 1 : 0 })
        let turned = rotated(image: patch, label: label, degrees: 90, fill: -1)
        for i in 0..<(n * n) { XCTAssertEqual(turned.image.pixels[i], r90.pixels[i], accuracy: 1e-4) }
        XCTAssertEqual(turned.label, dihedral(label, .rotate90))
        let identity = rotated(image: patch, label: label, degrees: 0, fill: -1)
        XCTAssertEqual(identity.image, patch)
        // 45 degrees: corners come from outside the patch -> the fill value, label 0
        let diagonal = rotated(image: patch, label: label, degrees: 45, fill: -7)
        XCTAssertEqual(diagonal.image[0, 0], -7)
        XCTAssertEqual(diagonal.label[0, 0], 0)
    }

    func testOnlineAugmentationAndNoiseAreSeeded() {
        let frame = SyntheticFrame(size: 64, seed: 1)
        let image = frame.image.map { ($0 - 2000) / 50 }
        let label = frame.label.map { $0 != 0 ? UInt8(1) : 0 }
        var g1 = SplitMix64(seed: 4), g2 = SplitMix64(seed: 4)
        for _ in 0..<6 {
            let a = augmentOnline(image: image, label: label, generator: &g1)
            let b = augmentOnline(image: image, label: label, generator: &g2)
            XCTAssertEqual(a.image, b.image)
            XCTAssertEqual(a.label, b.label)
        }
        // noise keeps unit variance of a standardized image: x' = (x + N(0, rho^2)) / sqrt(1 + rho^2)
        var random = SplitMix64(seed: 2)
        var white = Raster<Float>(width: 256, height: 256, pixels: (0..<65536).map { _ in Float(random.nextGaussian()) })
        addNoise(&white, rho: 0.8, generator: &random)
        let mean = white.pixels.reduce(0.0) { $0 + Double($1) } / 65536
        let variance = white.pixels.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / 65536
        XCTAssertEqual(variance, 1, accuracy: 0.02)
    }
}
