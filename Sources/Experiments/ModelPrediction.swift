import Catalog
import Foundation
import Micrograph
import Preprocessing
import Segmentation

/// A trained model ready to segment whole raw frames the way its data was prepared: the
/// preprocessing and patch size of its dataset version's recipe, or the study's when that
/// version folder is gone. `hrtem segment` and the browser's predictions both use it.
public struct FrameSegmenter {
    public let model: TrainedModel
    public let preprocessing: FramePreprocessing
    /// The recipe's patch size (512 without a recipe): the default tile.
    public let patch: Int

    public init(modelFolder: URL, threads: Int = 1) throws {
        model = try TrainedModel.load(from: modelFolder)
        model.network.compute = ComputeSettings(threads: threads)
        let versionFolder = URL(fileURLWithPath: model.card.datasetFolder)
        if VersionFolder.exists(at: versionFolder) {
            let version = try DatasetVersion.open(at: versionFolder)
            preprocessing = version.info.recipe.framePreprocessing
            patch = version.info.recipe.patch
        } else {
            preprocessing = .study
            patch = 512
        }
    }

    /// Whether `tile` suits the network (a multiple of its size step).
    public func accepts(tile: Int) -> Bool { tile > 0 && tile % model.network.architecture.sizeMultiple == 0 }

    /// The preprocessed frame and the particle mask (1 = particle), tile by tile and stitched.
    /// - Precondition: `accepts(tile:)`.
    public func segment(_ raw: Raster<Float>, tile: Int? = nil) -> (image: Raster<Float>, mask: Raster<UInt8>) {
        let (image, _) = preprocessFrame(raw, preprocessing)
        return (image, segmentFrame(network: model.network, image: image, tile: tile ?? patch))
    }
}
