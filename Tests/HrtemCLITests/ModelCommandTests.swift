@testable import Catalog
import Foundation
import Micrograph
import Segmentation
import TestSupport
import TorchArchive
import XCTest

/// `hrtem model import | fetch | list` end to end through the built binary.
final class ModelCommandTests: XCTestCase {
    var work: URL!
    var dataFolder: URL { work.appendingPathComponent("data") }
    var servers: [LocalMirror] = []

    override func setUpWithError() throws { work = try makeTemporaryFolder("hrtem-cli-model") }

    override func tearDown() {
        servers.forEach { $0.stop() }
        try? FileManager.default.removeItem(at: work)
    }

    func hrtem(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try runHrtem(arguments, environment: environment.merging(["HRTEM_HOME": dataFolder.path]) { $1 })
    }

    func listedModels() throws -> [[String: Any]] {
        let list = try hrtem(["model", "list", "--json"])
        XCTAssertEqual(list.status, 0, list.standardError)
        return try list.standardOutput.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    func studyReference() throws -> (models: URL, details: URL, conversion: URL) {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        return (reference.appendingPathComponent("study-models"), reference.appendingPathComponent("model_details.csv"),
                reference.appendingPathComponent("study_unet_2p2nm_fold0.safetensors"))
    }

    /// Checks the imported 2.2 nm fold-0 model against the reference conversion and the catalog row.
    func checkStudyFoldZero(_ models: [[String: Any]], conversion: URL) throws {
        let id = "UNet_2p2nmAu330kX423eUTC_fold0_seed962_model"
        let row = try XCTUnwrap(models.first { $0["id"] as? String == id })
        XCTAssertEqual(row["fold"] as? Int, 0)
        XCTAssertEqual(row["seed"] as? Int, 962)
        let settings = try JSONSerialization.jsonObject(with: Data((row["settings"] as! String).utf8)) as! [String: Any]
        XCTAssertEqual(settings["dataset"] as? String, "Au_2p2nm_330kx_423e_Std_UTC_FFCorr_Team05_Images")
        XCTAssertEqual(settings["material"] as? String, "Au")
        XCTAssertEqual(settings["size_nm"] as? Double, 2.2)
        XCTAssertEqual(settings["pixel_scale_nm"] as? Double, 0.02)
        XCTAssertEqual(settings["dose"] as? Double, 423)
        XCTAssertEqual(settings["source_sha256"] as? String, "9ab51fa036def0fb43f4ad94bd028ccaece01412804abe700012c4afa4ee0d0e")
        let saved = try readSafetensors(from: dataFolder.appendingPathComponent("models/\(id)/model.safetensors"))
        let reference = try readSafetensors(from: conversion)
        XCTAssertEqual(saved.tensors.count, reference.tensors.count)
        for tensor in reference.tensors { XCTAssertEqual(saved[tensor.name], tensor, tensor.name) }
    }

    func testImportAllStudyModelsWithDetailsThenList() throws {
        let (models, details, conversion) = try studyReference()
        let files = try FileManager.default.contentsOfDirectory(atPath: models.path).filter { $0.hasSuffix(".h5") }.sorted()
        XCTAssertEqual(files.count, 50)
        let result = try hrtem(["model", "import"] + files.map { models.appendingPathComponent($0).path } + ["--details", details.path])
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertEqual(result.standardOutput.split(separator: "\n").filter { $0.contains("widths 4-8-16-32 bottleneck 64, 2 classes, 130682 parameters") }.count, 50)
        let listed = try listedModels()
        XCTAssertEqual(listed.count, 50)
        // Every model found its row of the table despite the table's `Unet_` spelling.
        for row in listed {
            let settings = try JSONSerialization.jsonObject(with: Data((row["settings"] as! String).utf8)) as! [String: Any]
            XCTAssertNotNil(settings["dataset"], "\(row["id"] ?? "")")
        }
        XCTAssertEqual(Set(listed.compactMap { ($0["settings"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }?["dataset"] as? String }).count, 10)
        try checkStudyFoldZero(listed, conversion: conversion)
        let table = try hrtem(["model", "list"])
        XCTAssertTrue(table.standardOutput.contains("50 models"), table.standardOutput)
        XCTAssertTrue(table.standardOutput.contains("study:Au_5nm_330kx_80e_Std_UTC_FFCorr_Team05_Images"), table.standardOutput)
    }

    func testFetchStudyFromALocalMirrorVerifiesEveryDigest() throws {
        let (models, details, conversion) = try studyReference()
        let served = work.appendingPathComponent("served")
        try FileManager.default.createSymbolicLink(at: served, withDestinationURL: models)
        let mirror = try LocalMirror(root: served)
        servers.append(mirror)
        let environment = ["HRTEM_MIRROR_STUDY_MODELS_URL": mirror.baseURL]
        let first = try hrtem(["model", "fetch", "study", "--details", details.path], environment: environment)
        XCTAssertEqual(first.status, 0, first.standardError)
        XCTAssertTrue(first.standardError.contains("fetched 50 files from study-models, imported 50 models"), first.standardError)
        try checkStudyFoldZero(try listedModels(), conversion: conversion)
        // Stored files are not downloaded again.
        let again = try hrtem(["model", "fetch", "study", "--details", details.path], environment: environment)
        XCTAssertEqual(again.status, 0, again.standardError)
        XCTAssertTrue(again.standardError.contains("fetched 0 files"), again.standardError)

        // A mirror serving one altered file fails the digest check; that file is not imported.
        try FileManager.default.removeItem(at: dataFolder)
        let altered = work.appendingPathComponent("altered")
        try FileManager.default.createDirectory(at: altered, withIntermediateDirectories: true)
        let files = try FileManager.default.contentsOfDirectory(atPath: models.path).filter { $0.hasSuffix(".h5") }.sorted()
        for file in files {
            var bytes = try Data(contentsOf: models.appendingPathComponent(file))
            if file == files[0] { bytes[bytes.count - 100] ^= 0x01 }
            try bytes.write(to: altered.appendingPathComponent(file))
        }
        let badMirror = try LocalMirror(root: altered)
        servers.append(badMirror)
        let bad = try hrtem(["model", "fetch", "study"], environment: ["HRTEM_MIRROR_STUDY_MODELS_URL": badMirror.baseURL])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.standardError.lowercased().contains("sha-256") || bad.standardError.lowercased().contains("sha256"), bad.standardError)
        XCTAssertFalse(try listedModels().contains { $0["id"] as? String == (files[0] as NSString).deletingPathExtension })
    }

    /// Without reference data: a state_dict checkpoint of a small network, made by hrtem's writer.
    func testImportReadsTheNetworkFromTheFile() throws {
        let architecture = UNetArchitecture(widths: [2, 4], bottleneckWidth: 8, classes: 3)
        let network = ResidualUNet(architecture: architecture, seed: 3)
        let file = work.appendingPathComponent("tiny.pt")
        try TorchCheckpointWriter.write(network.stateTensors(), to: file)
        let result = try hrtem(["model", "import", file.path])
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertTrue(result.standardOutput.contains("imported tiny: state_dict, widths 2-4 bottleneck 8, 3 classes, \(network.parameterCount) parameters"),
                      result.standardOutput)
        let saved = try readSafetensors(from: dataFolder.appendingPathComponent("models/tiny/model.safetensors"))
        XCTAssertEqual(saved.tensors, network.stateTensors())
        XCTAssertEqual(try listedModels().map { $0["id"] as? String }, ["tiny"])
    }

    /// Both imports end to end: an HDF5 pair becomes a dataset version, a checkpoint a model,
    /// and `hrtem evaluate` scores the one on the other.
    func testImportedModelEvaluatesOnAnImportedDataset() throws {
        let pairs = work.appendingPathComponent("pairs")
        try FileManager.default.createDirectory(at: pairs, withIntermediateDirectories: true)
        var random = SplitMix64(seed: 9)
        let count = 6, size = 32
        let labelValues = (0..<(count * size * size)).map { index -> Float in
            let r = (index / size) % size, c = index % size
            return (r - 16) * (r - 16) + (c - 12) * (c - 12) < 64 ? 1 : 0
        }
        let imageValues = labelValues.map { $0 * 0.8 + Float(random.nextGaussian()) * 0.3 }
        let imagesNPY = pairs.appendingPathComponent("images.npy"), labelsNPY = pairs.appendingPathComponent("labels.npy")
        try writeNPY(NPYArray(shape: [count, size, size], float32: imageValues), to: imagesNPY)
        try writeNPY(NPYArray(shape: [count, size, size], float32: labelValues), to: labelsNPY)
        let images = try DatasetExport.writeHDF5(from: imagesNPY, to: pairs.appendingPathComponent("disc_Images.h5"),
                                                 key: "images", float64: true, patch: size)
        let labels = try DatasetExport.writeHDF5(from: labelsNPY, to: pairs.appendingPathComponent("disc_Labels.h5"),
                                                 key: "labels", float64: false, patch: size)
        let dataset = try hrtem(["dataset", "import-h5", "disc", "--images", images.path, "--labels", labels.path, "--folds", "3"])
        XCTAssertEqual(dataset.status, 0, dataset.standardError)

        let network = ResidualUNet(architecture: UNetArchitecture(widths: [2, 4], bottleneckWidth: 8), seed: 4)
        let file = work.appendingPathComponent("disc_fold1_seed7.pt")
        try TorchCheckpointWriter.write(network.stateTensors(), to: file)
        XCTAssertEqual(try hrtem(["model", "import", file.path]).status, 0)

        let model = dataFolder.appendingPathComponent("models/disc_fold1_seed7").path
        let evaluated = try hrtem(["evaluate", model, "disc", "--all", "--no-dihedral"])
        XCTAssertEqual(evaluated.status, 0, evaluated.standardError)
        XCTAssertTrue(evaluated.standardOutput.contains("all patches: \(count) patches"), evaluated.standardOutput)
        XCTAssertTrue(evaluated.standardOutput.contains("hard Dice"), evaluated.standardOutput)
        // The same scores in JSON, from the same weights: the evaluation is deterministic.
        let again = try hrtem(["evaluate", model, "disc", "--all", "--no-dihedral", "--json"])
        XCTAssertEqual(again.status, 0, again.standardError)
        let metrics = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(again.standardOutput.utf8)) as? [String: Any])
        let hard = try XCTUnwrap(metrics["hardDice"] as? Double)
        XCTAssertTrue(evaluated.standardOutput.contains(String(format: "hard Dice %.4f", hard)), evaluated.standardOutput)
    }

    func testHostileCheckpointIsRefusedAndRunsNothing() throws {
        let marker = work.appendingPathComponent("pwned")
        var pickle = PickleWriter()
        pickle.op(0x80); pickle.byte(2)
        pickle.global("os", "system")
        pickle.unicode("touch \(marker.path)")
        pickle.op(0x85); pickle.op(0x52); pickle.op(0x2E)
        let file = work.appendingPathComponent("evil_model.h5")
        try TorchCheckpointWriter.container(pickle: pickle.bytes, storages: []).write(to: file)
        let result = try hrtem(["model", "import", file.path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.standardError.contains(file.path), result.standardError)
        XCTAssertTrue(result.standardError.contains("archive/data.pkl] at byte 2: pickle: refused global 'os.system'"), result.standardError)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker.path), "the payload ran")
        XCTAssertEqual(try listedModels().count, 0)
    }
}
