import Foundation
import Micrograph

extension ModelCard {
    /// The card of a model trained elsewhere and imported (the study's published fold models):
    /// no training happened here, so epochs and training time are 0 and there are no metrics;
    /// `datasetVersion` names where it was trained (`study:<dataset>`), `datasetFolder` is empty.
    public static func imported(architecture: UNetArchitecture, parameters: Int, trainedOn dataset: String,
                                fold: Int, seed: UInt64) -> ModelCard {
        let settings = TrainingSettings(architecture: architecture, epochs: 0, seed: seed)
        return ModelCard(architecture: architecture, parameters: parameters, datasetVersion: dataset, datasetFolder: "",
                         fold: fold, seed: seed, configuration: settings, epochs: 0, bestEpoch: 0,
                         bestValidationLoss: 0, validation: nil, trainingSeconds: 0)
    }
}
