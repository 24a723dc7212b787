import Catalog
import Experiments
import Foundation
import Micrograph
import Segmentation
import TestSupport
import TorchArchive
import XCTest

/// Importing PyTorch checkpoints as hrtem models: the network is read from the tensors'
/// shapes, the weights survive bit for bit, and the imported study model computes what
/// PyTorch computes.
final class ModelImportTests: XCTestCase {
    var work: URL!
    var folder: DataFolder!
    var catalog: CatalogStore!

    override func setUpWithError() throws {
        work = try makeTemporaryFolder("hrtem-model-import")
        folder = DataFolder(url: work.appendingPathComponent("data"))
        catalog = try CatalogStore(folder: folder)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: work) }

    func testArchitectureIsReadFromTheTensorsShapes() throws {
        let architecture = UNetArchitecture(widths: [2, 4, 6], bottleneckWidth: 10, kernel: 3, inputChannels: 1, classes: 3)
        let source = ResidualUNet(architecture: architecture, seed: 17)
        let file = work.appendingPathComponent("small_fold2_seed5.pt")
        // As nn.DataParallel saves it: every name under `module.`.
        try TorchCheckpointWriter.write(source.stateTensors().map { tensor in
            var copy = tensor
            copy.name = "module." + tensor.name
            return copy
        }, to: file)
        let imported = try ModelImporter.importModel(file: file, folder: folder, catalog: catalog)
        XCTAssertEqual(imported.id, "small_fold2_seed5")
        XCTAssertEqual(imported.architecture, architecture)
        XCTAssertEqual(imported.parameterCount, source.parameterCount)
        XCTAssertEqual(imported.provenance.sourceClass, "state_dict")
        XCTAssertEqual(imported.provenance.sourceSHA256, try sha256Hex(fileAt: file))
        let saved = try readSafetensors(from: imported.folder.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(saved.tensors, source.stateTensors())
        let loaded = try TrainedModel.load(from: imported.folder)
        XCTAssertEqual(loaded.card.architecture, architecture)
        XCTAssertEqual(loaded.card.epochs, 0)
        let record = try XCTUnwrap(try catalog.model(id: imported.id))
        XCTAssertNil(record.datasetVersion)
        XCTAssertEqual(record.checkpointPath, imported.folder.path)
        let provenance = try JSONDecoder().decode(ModelProvenance.self, from: Data(try XCTUnwrap(record.settings).utf8))
        XCTAssertEqual(provenance, imported.provenance)
    }

    func testTensorsThatAreNotAUNetAreRefused() throws {
        let file = work.appendingPathComponent("other.pt")
        try TorchCheckpointWriter.write([SafetensorsTensor(name: "fc.weight", shape: [2, 2], float32: [1, 2, 3, 4])], to: file)
        XCTAssertThrowsError(try ModelImporter.importModel(file: file, folder: folder, catalog: catalog)) { error in
            XCTAssertTrue("\(error)".contains("not a residual U-Net state_dict"), "\(error)")
            XCTAssertTrue("\(error)".contains(file.path), "\(error)")
        }
        XCTAssertEqual(try catalog.models().count, 0)
    }

    func testDetailsTableErrorsNameLineAndColumn() throws {
        let table = work.appendingPathComponent("details.csv")
        try Data("Model Name,Fold,Dataset Trained On,Np Diameter (nm),Np Material,Pixel Scale (nm),Dosage (e/A2)\nUnet_a.h5,0,A,2.2,Au,zero,423\n".utf8).write(to: table)
        XCTAssertThrowsError(try StudyModelDetails.read(from: table)) { error in
            XCTAssertEqual((error as? FormatError)?.line, 2)
            XCTAssertEqual((error as? FormatError)?.column, 6)
        }
        try Data("Name,Fold\n".utf8).write(to: table)
        XCTAssertThrowsError(try StudyModelDetails.read(from: table)) { error in
            XCTAssertEqual((error as? FormatError)?.line, 1)
        }
    }

    /// The published 2.2 nm fold-0 file, imported, equals hrtem's reference conversion tensor for
    /// tensor and reproduces PyTorch's logits on the oracle input.
    func testStudyModelImportReproducesPyTorch() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let details = try StudyModelDetails.read(from: reference.appendingPathComponent("model_details.csv"))
        let imported = try ModelImporter.importModel(
            file: reference.appendingPathComponent("study-models/UNet_2p2nmAu330kX423eUTC_fold0_seed962_model.h5"),
            details: details, folder: folder, catalog: catalog)
        XCTAssertEqual(imported.architecture, .study)
        XCTAssertEqual(imported.provenance.dataset, "Au_2p2nm_330kx_423e_Std_UTC_FFCorr_Team05_Images")
        XCTAssertEqual(imported.provenance.pixelScaleNM, 0.02)
        XCTAssertEqual(imported.provenance.seed, 962)

        let saved = try readSafetensors(from: imported.folder.appendingPathComponent("model.safetensors"))
        let conversion = try readSafetensors(from: reference.appendingPathComponent("study_unet_2p2nm_fold0.safetensors"))
        XCTAssertEqual(saved.tensors.sorted { $0.name < $1.name }, conversion.tensors.sorted { $0.name < $1.name })

        let oracle = try JSONSerialization.jsonObject(
            with: Data(contentsOf: reference.appendingPathComponent("study_unet_parity.json"))) as! [String: Any]
        let size = (oracle["input"] as! [String: Any])["size"] as! Int
        let network = try TrainedModel.load(from: imported.folder).network
        let logits = network.forward(Tensor([1, 1, size, size], values: studyParityInput(size: size).values), training: false)
        let planes = (0..<2).map { Array(UnsafeBufferPointer(start: logits.plane(0, $0), count: size * size)) }
        assertMatchesStudyParityOracle(planes, oracle: oracle, size: size)
    }
}
