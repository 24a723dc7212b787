import Foundation
import Micrograph

/// Runs `network` over a whole (preprocessed) frame cut into non-overlapping `tile` x `tile`
/// tiles in raster order, `batch` tiles at a time in evaluation mode, the last row and column of
/// tiles padded with zeros (the standardized frame's mean). `consume` gets each batch's logits
/// `[count, classes, tile, tile]` and the (tile row, tile column) of each image in it.
/// - Precondition: `tile` is a multiple of the network's `sizeMultiple`.
/// `include` picks batches by their index (0, 1, ... in raster order); the others are skipped.
func forEachTiledPrediction(network: ResidualUNet, image: Raster<Float>, tile: Int, batch: Int,
                            include: (Int) -> Bool = { _ in true },
                            _ consume: (Tensor, ArraySlice<(Int, Int)>) -> Void) {
    precondition(tile % network.architecture.sizeMultiple == 0, "tile \(tile) is not a multiple of \(network.architecture.sizeMultiple)")
    let rows = (image.height + tile - 1) / tile, columns = (image.width + tile - 1) / tile
    let tiles = (0..<(rows * columns)).map { ($0 / columns, $0 % columns) }
    var start = 0, batchIndex = -1
    while start < tiles.count {
        let group = tiles[start..<min(tiles.count, start + max(1, batch))]
        batchIndex += 1
        guard include(batchIndex) else {
            start += group.count
            continue
        }
        let input = Tensor([group.count, 1, tile, tile])
        for (index, (r, c)) in group.enumerated() {
            let target = input.plane(index, 0)
            let rowsHere = min(tile, image.height - r * tile), columnsHere = min(tile, image.width - c * tile)
            image.pixels.withUnsafeBufferPointer { source in
                for y in 0..<rowsHere {
                    (target + y * tile).update(from: source.baseAddress! + (r * tile + y) * image.width + c * tile,
                                               count: columnsHere)
                }
            }
        }
        consume(network.forward(input, training: false), group)
        start += group.count
    }
}

/// Why fold models cannot be combined.
public struct EnsembleError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What an ensemble of models says about one frame: the mean particle probability, the hard
/// mask, and where and how much the models disagree.
public struct EnsemblePrediction: Sendable {
    public var modelCount: Int
    /// Mean over the models of each pixel's particle probability softmax(logits)[1].
    public var probability: Raster<Float>
    /// 1 where the mean probability is above 0.5.
    public var mask: Raster<UInt8>
    /// Standard deviation (population, over the models) of each pixel's particle probability.
    public var deviation: Raster<Float>
    /// Binary entropy of the mean probability, in bits (0 = certain, 1 = a coin toss).
    public var entropy: Raster<Float>
    /// Mean over pixels of `deviation`: the frame-level uncertainty score.
    public var meanDeviation: Double
    /// Mean over pixels of `entropy`.
    public var meanEntropy: Double
    /// Fraction of pixels on which the models' own hard masks do not all agree.
    public var disagreement: Double
}

/// Runs every network on the frame (tiled, as `segmentFrame`) and combines their particle
/// probabilities. `concurrentPasses` workers run at once, each on the networks' compute threads
/// (give each network threads / `concurrentPasses`): separate forward passes in parallel scale
/// better than one pass's convolutions, and the per-pixel sums run in parallel with them. The
/// (model, batch of tiles) pairs are dealt to the workers in turn, a fixed assignment, so the
/// work is balanced for any number of models and the same arguments give the same bytes (the
/// result depends on `concurrentPasses` only through the order of float additions). Memory: the
/// frame plus, per worker, two frame-sized Float planes, a byte plane and one batch of tiles'
/// activations, and a Float plane for the entropy.
/// - Throws: `EnsembleError` when there is no network or the architectures differ (fold models
///   of one dataset share theirs; the names say which model differs).
public func ensemblePrediction(networks: [ResidualUNet], names: [String]? = nil, image: Raster<Float>,
                               tile: Int, batch: Int = 4, concurrentPasses: Int = 1) throws -> EnsemblePrediction {
    try checkEnsembleArchitectures(networks.map(\.architecture), names: names)
    let first = networks[0]
    guard tile > 0, tile % first.architecture.sizeMultiple == 0 else {
        throw EnsembleError("tile \(tile) is not a positive multiple of \(first.architecture.sizeMultiple)")
    }
    let count = image.count, width = image.width
    // Workers other than the first run replicas of the networks (a network's buffers serve one
    // pass at a time); each sums its (model, batch) pairs into planes of its own, which are then
    // added in worker order.
    let batches = batchCount(image: image, tile: tile, batch: batch)
    let workers = max(1, min(concurrentPasses, networks.count * batches))
    let replicas = try (0..<workers).map { worker in try worker == 0 ? networks : networks.map { try $0.replica() } }
    let planes = Locked([Int: (sum: [Float], squares: [Float], votes: [UInt8])]())
    concurrentPerform(iterations: workers) { worker in
        var sum = [Float](repeating: 0, count: count), squares = [Float](repeating: 0, count: count)
        var votes = [UInt8](repeating: 0, count: count)
        for (model, network) in replicas[worker].enumerated() {
            forEachTiledPrediction(network: network, image: image, tile: tile, batch: batch,
                                   include: { (model * batches + $0) % workers == worker }) { logits, group in
                for (index, (r, c)) in group.enumerated() {
                    let background = logits.plane(index, 0), particle = logits.plane(index, 1)
                    let rowsHere = min(tile, image.height - r * tile), columnsHere = min(tile, image.width - c * tile)
                    for y in 0..<rowsHere {
                        let base = (r * tile + y) * width + c * tile
                        for x in 0..<columnsHere {
                            let difference = particle[y * tile + x] - background[y * tile + x]
                            let p = 1 / (1 + exp(-difference))
                            sum[base + x] += p
                            squares[base + x] += p * p
                            if difference > 0 { votes[base + x] &+= 1 }
                        }
                    }
                }
            }
        }
        planes.withLock { $0[worker] = (sum, squares, votes) }
    }
    var (sum, sumSquares, votes) = planes.withLock { $0.removeValue(forKey: 0)! }
    for worker in 1..<workers {
        let other = planes.withLock { $0.removeValue(forKey: worker)! }
        for i in 0..<count {
            sum[i] += other.sum[i]
            sumSquares[i] += other.squares[i]
            votes[i] &+= other.votes[i]
        }
    }
    // The sums become the mean and the deviation in place, and the votes the mask: a 4096 x 4096
    // frame needs no more planes than it must return.
    let n = Float(networks.count)
    var entropy = [Float](repeating: 0, count: count)
    var totalDeviation = 0.0, totalEntropy = 0.0, disagreeing = 0
    for i in 0..<count {
        let mean = sum[i] / n
        sum[i] = mean
        let deviation = max(0, sumSquares[i] / n - mean * mean).squareRoot()
        sumSquares[i] = deviation
        let q = min(max(mean, 1e-7), 1 - 1e-7)
        let h = -(q * log2(q) + (1 - q) * log2(1 - q))
        entropy[i] = h
        totalDeviation += Double(deviation)
        totalEntropy += Double(h)
        if votes[i] != 0 && Int(votes[i]) != networks.count { disagreeing += 1 }
        votes[i] = mean > 0.5 ? 1 : 0
    }
    let height = image.height
    return EnsemblePrediction(modelCount: networks.count,
                              probability: Raster(width: width, height: height, pixels: sum),
                              mask: Raster(width: width, height: height, pixels: votes),
                              deviation: Raster(width: width, height: height, pixels: sumSquares),
                              entropy: Raster(width: width, height: height, pixels: entropy),
                              meanDeviation: totalDeviation / Double(max(1, count)),
                              meanEntropy: totalEntropy / Double(max(1, count)),
                              disagreement: Double(disagreeing) / Double(max(1, count)))
}

/// How many batches of `batch` tiles cover the frame.
func batchCount(image: Raster<Float>, tile: Int, batch: Int) -> Int {
    let tiles = ((image.height + tile - 1) / tile) * ((image.width + tile - 1) / tile)
    return (tiles + max(1, batch) - 1) / max(1, batch)
}

extension ResidualUNet {
    /// A network with the same architecture, compute settings and state, to run beside this one.
    func replica() throws -> ResidualUNet {
        let copy = ResidualUNet(architecture: architecture, compute: compute)
        try copy.loadState(stateTensors(), file: "replica")
        return copy
    }
}

/// Checks that models can form an ensemble: at least one, all of one 2-class architecture.
/// - Throws: `EnsembleError` naming the first model that differs and both architectures.
public func checkEnsembleArchitectures(_ architectures: [UNetArchitecture], names: [String]? = nil) throws {
    guard let first = architectures.first else { throw EnsembleError("an ensemble needs at least one model") }
    let label = { (index: Int) in names?[index] ?? "model \(index + 1)" }
    for (index, architecture) in architectures.enumerated() where architecture != first {
        throw EnsembleError("models of different architectures cannot be combined: \(label(0)) has \(describe(first)), "
                            + "\(label(index)) has \(describe(architecture))")
    }
    guard first.classes == 2 else {
        throw EnsembleError("an ensemble needs 2-class models (particle / support); \(label(0)) has \(first.classes) classes")
    }
}

private func describe(_ architecture: UNetArchitecture) -> String {
    "widths \(architecture.widths.map(String.init).joined(separator: ",")), bottleneck \(architecture.bottleneckWidth), "
        + "kernel \(architecture.kernel), \(architecture.classes) classes"
}
