import Foundation
import Micrograph
import Preprocessing

/// Writes a dataset version folder as the materializer lays it out, from arrays a test made:
/// `images.npy`, `labels.npy`, `folds.json` and a `recipe.json` naming the version (no frames:
/// the patches come from the test, not from catalogued frames).
public func writeVersionFolder(at url: URL, name: String, versionId: String, query: String = "",
                               images: NPYArray, labels: NPYArray, folds: FoldPlan) throws {
    let folder = VersionFolder(url)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    try writeNPY(images, to: folder.imagesFile)
    try writeNPY(labels, to: folder.labelsFile)
    try writeFileAtomically(folds.jsonBytes(), to: folder.foldsFile)
    try writeVersionRecipe(at: url, name: name, versionId: versionId, query: query,
                           patchCount: images.shape.first ?? 0, patchSize: images.shape.last ?? 0, folds: folds.k)
}

/// Writes only `recipe.json` (with `folds.json` it makes a version folder a plan can name; the
/// simulated executor reads no arrays).
public func writeVersionRecipe(at url: URL, name: String, versionId: String, query: String = "",
                               patchCount: Int = 0, patchSize: Int = 0, folds: Int) throws {
    let recipe: [String: Any] = [
        "versionId": versionId, "name": name, "query": query, "formatVersion": 1,
        "recipe": ["name": name, "query": query, "folds": folds], "frames": [] as [Any], "frameOrder": [] as [Any],
        "frameCount": 0, "patchCount": patchCount, "patchSize": patchSize, "foldRule": "study",
    ]
    try writeFileAtomically(try JSONSerialization.data(withJSONObject: recipe, options: [.sortedKeys]),
                            to: VersionFolder(url).recipeFile)
}

/// `count` `side` x `side` patches, each a disc of radius 4 at a random centre at least
/// `margin` pixels from the edges, 1.5 above Gaussian noise of deviation 0.3, with its exact
/// label: enough for a network to learn something in an epoch or two. The same arguments give
/// the same values.
public func discPatches(count: Int, side: Int, margin: Int = 0, seed: UInt64) -> (images: [Float], labels: [UInt8]) {
    var images = [Float](), labels = [UInt8]()
    var random = SplitMix64(seed: seed)
    for _ in 0..<count {
        let span = Double(side - 2 * margin)
        let ci = Double(margin) + random.nextUnitDouble() * span, cj = Double(margin) + random.nextUnitDouble() * span
        for i in 0..<side {
            for j in 0..<side {
                let inside = (Double(i) - ci) * (Double(i) - ci) + (Double(j) - cj) * (Double(j) - cj) < 16
                images.append(Float((inside ? 1.5 : 0) + 0.3 * random.nextGaussian()))
                labels.append(inside ? 1 : 0)
            }
        }
    }
    return (images, labels)
}

/// A version folder of `discPatches` with the given folds.
public func writeDiscVersionFolder(at url: URL, name: String, versionId: String, count: Int, side: Int = 16,
                                   margin: Int = 0, seed: UInt64, folds: FoldPlan) throws {
    let (images, labels) = discPatches(count: count, side: side, margin: margin, seed: seed)
    try writeVersionFolder(at: url, name: name, versionId: versionId,
                           images: NPYArray(shape: [count, side, side], float32: images),
                           labels: NPYArray(shape: [count, side, side], uint8: labels), folds: folds)
}

/// A tiny trainable version folder: `count` patches of `side` x `side` pixels, each a disc of
/// radius 3 (label 1) at a random place, `contrast` above Gaussian noise of deviation 0.5, and
/// 3 study-rule folds of `count / 3` test patches (the first remaining patch validates).
/// The same arguments give the same bytes.
public func writeThreeFoldDiscVersionFolder(at url: URL, name: String, versionId: String, contrast: Float, seed: UInt64,
                                            count: Int = 12, side: Int = 16) throws {
    var random = SplitMix64(seed: seed)
    var images = [Float](), labels = [UInt8]()
    for _ in 0..<count {
        let cy = 4 + Int(random.nextUnitDouble() * Double(side - 8)), cx = 4 + Int(random.nextUnitDouble() * Double(side - 8))
        for y in 0..<side {
            for x in 0..<side {
                let inside = (y - cy) * (y - cy) + (x - cx) * (x - cx) <= 9
                labels.append(inside ? 1 : 0)
                images.append((inside ? contrast : 0) + Float(random.nextGaussian()) * 0.5)
            }
        }
    }
    let testSize = count / 3
    let folds = (0..<3).map { fold in
        let test = Array(fold * testSize..<(fold + 1) * testSize)
        let rest = (0..<count).filter { !test.contains($0) }
        return Fold(fold: fold, seed: 100 + fold, train: Array(rest.dropFirst()), validation: [rest[0]], test: test)
    }
    try writeVersionFolder(at: url, name: name, versionId: versionId, query: "contrast \(contrast)",
                           images: NPYArray(shape: [count, side, side], float32: images),
                           labels: NPYArray(shape: [count, side, side], uint8: labels),
                           folds: FoldPlan(k: 3, rule: .study, folds: folds))
}
