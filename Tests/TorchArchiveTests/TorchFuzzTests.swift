import Foundation
import Micrograph
import TestSupport
@testable import TorchArchive
import XCTest

/// Mutated checkpoints never crash, hang or allocate without bound: each case either reads or
/// throws a `FormatError` naming the file. Mutations hit the zip container as stored (its CRC
/// catches most), the pickle re-wrapped with a valid CRC (so the unpickler sees them), and the
/// storages' sizes. `HRTEM_FUZZ_CASES` / `HRTEM_FUZZ_SEED` as in the format fuzzer.
final class TorchFuzzTests: XCTestCase {
    static var caseCount: Int { (Int(ProcessInfo.processInfo.environment["HRTEM_FUZZ_CASES"] ?? "") ?? 10000) / 10 }
    static var seed: UInt64 { UInt64(ProcessInfo.processInfo.environment["HRTEM_FUZZ_SEED"] ?? "") ?? 20261205 }

    func sampleTensors() -> [SafetensorsTensor] {
        [SafetensorsTensor(name: "downs.0.conv1.weight", shape: [2, 1, 3, 3], float32: (0..<18).map { Float($0) - 9 }),
         SafetensorsTensor(name: "downs.0.bn1.num_batches_tracked", int64: 12),
         SafetensorsTensor(name: "final_conv.bias", shape: [3], float32: [1, 2, 3])]
    }

    /// Pickles to mutate: hrtem's state_dict pickle and, when present, the study's whole-module one.
    func seedPickles() throws -> [(name: String, pickle: [UInt8], storages: [(key: String, bytes: [UInt8])])] {
        let tensors = sampleTensors()
        let written = try TorchCheckpointWriter.bytes(tensors)
        var seeds = [("state_dict", try XCTUnwrap(TorchCheckpointTests.pickle(of: written)),
                      tensors.enumerated().map { (key: String($0.offset), bytes: $0.element.bytes) })]
        if let reference = referenceFolder {
            let file = reference.appendingPathComponent("study-models/UNet_2p2nmAu330kX423eUTC_fold0_seed962_model.h5")
            // Its storages are not needed: the fuzz loader serves zeros of whatever size the
            // (mutated) pickle asks for.
            seeds.append(("study module", try CheckpointContainer(file, file: file.path).pickle, []))
        }
        return seeds
    }

    func testMutatedPicklesFailCleanly() throws {
        var random = SplitMix64(seed: Self.seed)
        var read = 0, refused = 0
        for (name, pickle, _) in try seedPickles() {
            for _ in 0..<Self.caseCount {
                var bytes = pickle
                switch random.next() % 4 {
                case 0: // flip a few bytes
                    for _ in 0..<(1 + Int(random.next() % 4)) { bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next()) }
                case 1: // cut short
                    bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count))))
                case 2: // duplicate a run (repeats opcodes: memo, marks, REDUCE...)
                    let start = Int(random.next() % UInt64(bytes.count)), length = Int(random.next() % 64)
                    bytes.insert(contentsOf: bytes[start..<min(bytes.count, start + length)], at: Int(random.next() % UInt64(bytes.count)))
                default: // drop a run
                    let start = Int(random.next() % UInt64(bytes.count))
                    bytes.removeSubrange(start..<min(bytes.count, start + 1 + Int(random.next() % 16)))
                }
                let arena = PickleArena()
                defer { arena.release() }
                let unpickler = Unpickler(bytes: bytes, file: name, baseOffset: 0, loadStorage: { key, dtype, elements in
                    guard elements <= 1 << 20 else { throw FormatError(file: name, "storage \(key) too large for the fuzz loader") }
                    return [UInt8](repeating: 0, count: elements * dtype.size)
                }, arena: arena, gatherBudget: 1 << 24)
                do {
                    _ = try TorchCheckpoint.interpret(try unpickler.load(), file: name, outputBudget: 1 << 24)
                    read += 1
                } catch let error as FormatError {
                    XCTAssertTrue(error.file.hasPrefix(name), error.description)
                    refused += 1
                }
            }
        }
        XCTAssertGreaterThan(refused, 0)
        print("mutated pickles: \(read) read, \(refused) refused with a FormatError")
    }

    func testMutatedArchivesFailCleanly() throws {
        let tensors = sampleTensors()
        let good = try TorchCheckpointWriter.bytes(tensors)
        var random = SplitMix64(seed: Self.seed ^ 0x9E37)
        var read = 0, refused = 0
        // Each case stages a file for the zip reader: half as many as the pickle cases.
        let cases = Self.caseCount / 2
        for index in 0..<cases {
            var bytes = [UInt8](good)
            switch index % 3 {
            case 0:
                for _ in 0..<(1 + Int(random.next() % 4)) { bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next()) }
            case 1:
                bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count))))
            default: // storages of the wrong size
                let pickle = try XCTUnwrap(TorchCheckpointTests.pickle(of: good))
                let storages = tensors.enumerated().map { item -> (key: String, bytes: [UInt8]) in
                    var storage = item.element.bytes
                    if random.next() % 2 == 0 { storage = Array(storage.prefix(Int(random.next() % UInt64(storage.count + 1)))) } else { storage += [0, 0, 0, 0] }
                    return (String(item.offset), storage)
                }
                bytes = [UInt8](try TorchCheckpointWriter.container(pickle: pickle, storages: storages))
            }
            do {
                _ = try TorchCheckpoint.parse(Data(bytes), file: "fuzz.pt")
                read += 1
            } catch let error as FormatError {
                XCTAssertTrue(error.file.hasPrefix("fuzz.pt"), error.description)
                refused += 1
            }
        }
        XCTAssertGreaterThan(refused, cases / 2)
        print("mutated archives: \(read) read, \(refused) refused with a FormatError")
    }

    /// Deep nesting and reference cycles: teardown is iterative, so neither overflows the stack
    /// nor leaks; STOP then finds the wrong number of items or a non-checkpoint value.
    func testDeepNestingAndCyclesAreHarmless() throws {
        var pickle = PickleWriter()
        pickle.op(0x80); pickle.byte(2)
        pickle.op(0x29)
        for _ in 0..<500_000 { pickle.op(0x85) } // a tuple in a tuple, 500,000 deep
        pickle.op(0x30) // POP
        pickle.op(0x5D); pickle.op(0x71); pickle.byte(0) // a list, memoized
        pickle.op(0x68); pickle.byte(0); pickle.op(0x61) // appended to itself
        pickle.op(0x2E)
        let data = try TorchCheckpointWriter.container(pickle: pickle.bytes, storages: [])
        XCTAssertThrowsError(try TorchCheckpoint.parse(data, file: "deep.pt")) { error in
            XCTAssertTrue("\(error)".contains("expected a module or a state_dict"), "\(error)")
        }
    }
}
