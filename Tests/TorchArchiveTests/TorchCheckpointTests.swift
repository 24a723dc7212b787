import Foundation
import Micrograph
import TestSupport
@testable import TorchArchive
import XCTest

/// Reading PyTorch checkpoints: the study's 50 published whole-module files, hrtem's own
/// state_dict writer, and hand-made hostile pickles that must be refused without running.
final class TorchCheckpointTests: XCTestCase {
    static let studyModelCount = 50
    static let studyParameterCount = 130_682

    func studyModels() throws -> (folder: URL, files: [URL]) {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let folder = reference.appendingPathComponent("study-models")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".h5") }.sorted()
        return (folder, names.map { folder.appendingPathComponent($0) })
    }

    func testAllStudyModelsRead() throws {
        let (_, files) = try studyModels()
        XCTAssertEqual(files.count, Self.studyModelCount)
        for file in files {
            let checkpoint = try TorchCheckpoint.read(from: file)
            XCTAssertEqual(checkpoint.kind, .module(className: "__main__.UNet"), file.lastPathComponent)
            XCTAssertEqual(checkpoint.parameterCount, Self.studyParameterCount, file.lastPathComponent)
            // 4 encoder blocks, the bottleneck and 4 decoder blocks, each with two BatchNorms.
            XCTAssertEqual(checkpoint.tensors.filter { $0.name.hasSuffix(".num_batches_tracked") }.count, 18)
            XCTAssertTrue(checkpoint.modules.contains(TorchModule(path: "downs.0.conv1", className: "torch.nn.modules.conv.Conv2d")))
            XCTAssertEqual(checkpoint.tensors.first?.name, "downs.0.conv1.weight")
            XCTAssertEqual(checkpoint.tensors.last?.name, "final_conv.bias")
        }
    }

    /// hrtem's conversion of the 2.2 nm fold-0 model, made independently, holds exactly what the
    /// native reader finds in the published file.
    func testStudyModelEqualsReferenceConversionBitForBit() throws {
        let (folder, _) = try studyModels()
        let checkpoint = try TorchCheckpoint.read(from: folder.appendingPathComponent("UNet_2p2nmAu330kX423eUTC_fold0_seed962_model.h5"))
        let reference = try readSafetensors(from: folder.deletingLastPathComponent().appendingPathComponent("study_unet_2p2nm_fold0.safetensors"))
        XCTAssertEqual(checkpoint.tensors.count, reference.tensors.count)
        for tensor in reference.tensors {
            guard let mine = checkpoint.tensors.first(where: { $0.name == tensor.name }) else {
                XCTFail("\(tensor.name) missing from the checkpoint"); continue
            }
            XCTAssertEqual(mine, tensor, tensor.name)
        }
    }

    func sampleTensors() -> [SafetensorsTensor] {
        [SafetensorsTensor(name: "conv.weight", shape: [2, 1, 3, 3], float32: (0..<18).map { Float($0) * 0.25 - 2 }),
         SafetensorsTensor(name: "conv.bias", shape: [2], float32: [0.5, -1.5]),
         SafetensorsTensor(name: "bn.num_batches_tracked", int64: 77),
         SafetensorsTensor(name: "big", shape: [300, 2], float32: (0..<600).map { Float($0) })]
    }

    func testWrittenStateDictReadsBackAndIsDeterministic() throws {
        let tensors = sampleTensors()
        let bytes = try TorchCheckpointWriter.bytes(tensors)
        XCTAssertEqual(bytes, try TorchCheckpointWriter.bytes(tensors), "same tensors, same bytes")
        let checkpoint = try TorchCheckpoint.parse(bytes, file: "written.pt")
        XCTAssertEqual(checkpoint.kind, .stateDict)
        XCTAssertEqual(checkpoint.tensors, tensors)
        XCTAssertEqual(checkpoint.formatVersion, "3")
    }

    /// A view with a storage offset and transposed strides is gathered into C order.
    func testStridedViewIsGatheredInCOrder() throws {
        var pickle = PickleWriter()
        pickle.op(0x80); pickle.byte(2)
        pickle.op(0x7D) // EMPTY_DICT
        pickle.unicode("t")
        pickle.global("torch._utils", "_rebuild_tensor_v2")
        pickle.op(0x28)
        pickle.op(0x28); pickle.unicode("storage"); pickle.global("torch", "FloatStorage"); pickle.unicode("0"); pickle.unicode("cpu"); pickle.int(7); pickle.op(0x74)
        pickle.op(0x51)
        pickle.int(1)               // offset 1
        pickle.tuple([3, 2])        // size
        pickle.tuple([1, 3])        // stride: the transpose of a 2 x 3 block
        pickle.op(0x89)
        pickle.global("collections", "OrderedDict"); pickle.op(0x29); pickle.op(0x52)
        pickle.op(0x74); pickle.op(0x52)
        pickle.op(0x73) // SETITEM
        pickle.op(0x2E)
        let storage = SafetensorsTensor(name: "s", shape: [7], float32: [9, 0, 1, 2, 3, 4, 5])
        let data = try TorchCheckpointWriter.container(pickle: pickle.bytes, storages: [("0", storage.bytes)])
        let checkpoint = try TorchCheckpoint.parse(data, file: "strided.pt")
        XCTAssertEqual(checkpoint.tensors.first?.shape, [3, 2])
        XCTAssertEqual(checkpoint.tensors.first?.float32Values, [0, 3, 1, 4, 2, 5])
    }

    /// PyTorch itself, when a Python with torch is at hand ($HRTEM_TORCH_PYTHON or the peer
    /// Python): it loads hrtem's checkpoints (with `weights_only=True`, its own safe loader) and
    /// finds in the study's files the tensors hrtem's reader finds, byte for byte.
    func testPyTorchAgreesBothWays() throws {
        guard let python = torchPeerPython else { throw XCTSkip("no Python imports torch (set HRTEM_TORCH_PYTHON): PyTorch interop skipped") }
        let folder = try makeTemporaryFolder("hrtem-torch-interop")
        defer { try? FileManager.default.removeItem(at: folder) }
        let written = folder.appendingPathComponent("written.pt")
        try TorchCheckpointWriter.write(sampleTensors(), to: written)
        var files = [(written, try TorchCheckpoint.read(from: written))]
        if let reference = referenceFolder {
            let study = reference.appendingPathComponent("study-models/UNet_5nmCdSe330kX421eUTC_fold3_seed72115_model.h5")
            files.append((study, try TorchCheckpoint.read(from: study)))
        }
        let script = """
        import hashlib, json, sys, torch, torch.nn as nn
        class UNet(nn.Module): pass
        class ResidualBlock(nn.Module): pass
        out = {}
        for name in sys.argv[1:]:
            whole = name.endswith('.h5')
            value = torch.load(name, map_location='cpu', weights_only=not whole)
            state = value.state_dict() if whole else value
            out[name] = {k: [str(t.dtype), list(t.shape), hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()]
                         for k, t in state.items()}
        print(json.dumps(out))
        """
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [python, "-c", script] + files.map(\.0.path))
        XCTAssertEqual(result.status, 0, result.standardError)
        let line = try XCTUnwrap(result.standardOutput.split(separator: "\n").last)
        let loaded = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: [String: [Any]]])
        for (url, checkpoint) in files {
            let theirs = try XCTUnwrap(loaded[url.path])
            XCTAssertEqual(Set(theirs.keys), Set(checkpoint.tensors.map(\.name)), url.lastPathComponent)
            for tensor in checkpoint.tensors {
                let entry = try XCTUnwrap(theirs[tensor.name])
                XCTAssertEqual(entry[1] as? [Int], tensor.shape, tensor.name)
                XCTAssertEqual(entry[2] as? String, sha256Hex(tensor.bytes), "\(url.lastPathComponent) \(tensor.name)")
            }
        }
    }

    // MARK: Hostile pickles

    /// A pickle calling `module.name(argument)` in protocol 2 (GLOBAL + REDUCE), the classic payload.
    func callingPickle(_ module: String, _ name: String, _ argument: String) -> [UInt8] {
        var pickle = PickleWriter()
        pickle.op(0x80); pickle.byte(2)
        pickle.global(module, name)
        pickle.unicode(argument)
        pickle.op(0x85) // TUPLE1
        pickle.op(0x52) // REDUCE
        pickle.op(0x2E)
        return pickle.bytes
    }

    func assertRefused(_ pickle: [UInt8], naming global: String, offset: Int? = 2,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let data = try TorchCheckpointWriter.container(pickle: pickle, storages: [])
        XCTAssertThrowsError(try TorchCheckpoint.parse(data, file: "evil.pt"), file: file, line: line) { error in
            guard let error = error as? FormatError else { return XCTFail("not a FormatError: \(error)", file: file, line: line) }
            XCTAssertTrue(error.file.hasPrefix("evil.pt"), error.description, file: file, line: line)
            XCTAssertTrue(error.file.contains("data.pkl"), error.description, file: file, line: line)
            if let offset { XCTAssertEqual(error.offset, offset, error.description, file: file, line: line) }
            XCTAssertTrue(error.message.contains(global), error.description, file: file, line: line)
        }
    }

    func testCodeExecutingGlobalsAreRefusedAndNothingRuns() throws {
        let folder = try makeTemporaryFolder("hrtem-torch-evil")
        defer { try? FileManager.default.removeItem(at: folder) }
        let marker = folder.appendingPathComponent("pwned")
        let command = "touch \(marker.path)"
        try assertRefused(callingPickle("os", "system", command), naming: "refused global 'os.system'")
        try assertRefused(callingPickle("posix", "system", command), naming: "refused global 'posix.system'")
        try assertRefused(callingPickle("builtins", "eval", "__import__('os').system('\(command)')"), naming: "refused global 'builtins.eval'")
        try assertRefused(callingPickle("__builtin__", "eval", "1"), naming: "refused global '__builtin__.eval'")
        try assertRefused(callingPickle("subprocess", "Popen", command), naming: "refused global 'subprocess.Popen'")
        try assertRefused(callingPickle("numpy.core.multiarray", "_reconstruct", "x"), naming: "refused global 'numpy.core.multiarray._reconstruct'")
        try assertRefused(callingPickle("torch", "load", "x"), naming: "refused global 'torch.load'")
        // An allowed module class is a name only: calling it is refused.
        try assertRefused(callingPickle("torch.nn.modules.conv", "Conv2d", "x"), naming: "refused REDUCE on 'torch.nn.modules.conv.Conv2d'", offset: nil)
        // Protocol 4's STACK_GLOBAL names the global from two strings on the stack.
        var stackGlobal = PickleWriter()
        stackGlobal.op(0x80); stackGlobal.byte(4)
        stackGlobal.unicode("os"); stackGlobal.unicode("system")
        stackGlobal.op(0x93)
        stackGlobal.unicode(command); stackGlobal.op(0x85); stackGlobal.op(0x52); stackGlobal.op(0x2E)
        try assertRefused(stackGlobal.bytes, naming: "refused global 'os.system'", offset: nil)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker.path), "a payload ran")
    }

    /// The same, with pickles written by Python's own pickle module (no torch needed).
    func testPythonMadePayloadsAreRefused() throws {
        guard pythonCanImport("pickle", python: "python3") else { throw XCTSkip("python3 is absent: Python-made payloads skipped") }
        let folder = try makeTemporaryFolder("hrtem-torch-python")
        defer { try? FileManager.default.removeItem(at: folder) }
        let marker = folder.appendingPathComponent("pwned")
        let script = """
        import os, pickle, subprocess, sys
        class System:
            def __reduce__(self): return (os.system, ('touch \(marker.path)',))
        class Eval:
            def __reduce__(self): return (eval, ("open('\(marker.path)', 'w')",))
        class Popen:
            def __reduce__(self): return (subprocess.Popen, (['touch', '\(marker.path)'],))
        for name, payload in [('system', System()), ('eval', Eval()), ('popen', Popen())]:
            for protocol in (2, 4):
                with open(os.path.join(sys.argv[1], f'{name}-{protocol}.pkl'), 'wb') as f:
                    pickle.dump({'weight': payload}, f, protocol=protocol)
        """
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, folder.path])
        XCTAssertEqual(result.status, 0, result.standardError)
        // Protocol 2 names some globals by their Python 2 modules (subprocess.Popen may appear
        // under `commands`), so only the name is asserted.
        let expected = ["system": "system'", "eval": "eval'", "popen": "Popen'"]
        for (name, global) in expected {
            for proto in [2, 4] {
                let pickle = try Data(contentsOf: folder.appendingPathComponent("\(name)-\(proto).pkl"))
                try assertRefused([UInt8](pickle), naming: global, offset: nil)
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker.path), "a payload ran")
    }

    // MARK: Damaged archives

    func assertFormatError(_ data: Data, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try TorchCheckpoint.parse(data, file: "damaged.pt"), file: file, line: line) { error in
            guard let error = error as? FormatError else { return XCTFail("not a FormatError: \(error)", file: file, line: line) }
            XCTAssertTrue(error.file.hasPrefix("damaged.pt"), error.description, file: file, line: line)
            XCTAssertTrue(error.description.contains(text), error.description, file: file, line: line)
        }
    }

    func testDamagedArchivesEndInClearErrors() throws {
        let tensors = sampleTensors()
        let good = try TorchCheckpointWriter.bytes(tensors)
        assertFormatError(good.prefix(good.count / 2), contains: "not a readable zip archive")
        assertFormatError(Data("not a zip".utf8), contains: "not a readable zip archive")
        // Storage 3 shorter than the pickle declares.
        let shortStorage = try TorchCheckpointWriter.container(
            pickle: try XCTUnwrap(Self.pickle(of: good)),
            storages: tensors.enumerated().map { (String($0.offset), $0.offset == 3 ? Array($0.element.bytes.dropLast(4)) : $0.element.bytes) })
        assertFormatError(shortStorage, contains: "storage archive/data/3 holds 2396 bytes, the pickle declares 600 float32 elements (2400 bytes)")
        let missingStorage = try TorchCheckpointWriter.container(
            pickle: try XCTUnwrap(Self.pickle(of: good)),
            storages: tensors.dropLast().enumerated().map { (String($0.offset), $0.element.bytes) })
        assertFormatError(missingStorage, contains: "storage archive/data/3 is named by the pickle but missing")
        // A pickle cut short, and one with a byte turned into an opcode no archive uses.
        var pickle = try XCTUnwrap(Self.pickle(of: good))
        assertFormatError(try TorchCheckpointWriter.container(pickle: Array(pickle.prefix(100)), storages: []), contains: "truncated")
        pickle[2] = 0x69 // INST: instantiates by name, never needed
        assertFormatError(try TorchCheckpointWriter.container(pickle: pickle, storages: []), contains: "at byte 2: pickle: unsupported opcode 0x69")
        // No pickle at all.
        assertFormatError(try TorchCheckpointWriter.container(pickle: [], storages: []).replacingOccurrences(of: "data.pkl", with: "other.pk"),
                          contains: "holds no <root>/data.pkl")
    }

    /// The pickle of a checkpoint.
    static func pickle(of checkpoint: Data) -> [UInt8]? {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("hrtem-pickle-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        guard (try? checkpoint.write(to: url)) != nil else { return nil }
        return try? CheckpointContainer(url, file: "checkpoint").pickle
    }
}

private extension Data {
    func replacingOccurrences(of text: String, with replacement: String) -> Data {
        let needle = Data(text.utf8), swap = Data(replacement.utf8)
        var copy = self
        var searchStart = copy.startIndex
        while let range = copy.range(of: needle, in: searchStart..<copy.endIndex) {
            copy.replaceSubrange(range, with: swap)
            searchStart = range.lowerBound + swap.count
        }
        return copy
    }
}
