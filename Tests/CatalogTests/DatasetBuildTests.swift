import Catalog
import Foundation
import GRDB
import Micrograph
import Preprocessing
import TestSupport
import XCTest

final class DatasetBuildTests: XCTestCase {
    func testBuildWritesAConsistentVersionAndRebuildsByteIdentically() throws {
        let a = try DatasetFixture()
        defer { a.remove() }
        let first = try DatasetMaterializer.build(a.recipe, store: a.store, dataFolder: a.dataFolder, jobs: 3)
        XCTAssertFalse(first.reused)
        let version = first.version
        XCTAssertEqual(try version.verify(), [])
        XCTAssertEqual(version.info.frameCount, 6)
        let images = try version.images(), labels = try version.labels()
        XCTAssertEqual(images.shape, [version.patchCount, 64, 64])
        XCTAssertEqual(images.pixelType, .float32)
        XCTAssertEqual(labels.shape, [version.patchCount, 64, 64])
        XCTAssertTrue(labels.bytes.allSatisfy { $0 <= 1 })
        XCTAssertGreaterThan(version.patchCount, 6)
        let rows = try version.patchRows()
        XCTAssertEqual(rows.map(\.patch), Array(0..<version.patchCount))
        XCTAssertTrue(rows.allSatisfy { $0.particlePixels > 100 })
        // each stored label patch has the particle pixels patches.csv says
        for row in rows {
            let start = row.patch * 64 * 64
            XCTAssertEqual(labels.bytes[start..<(start + 64 * 64)].reduce(0) { $0 + Int($1) }, row.particlePixels)
        }
        // frames appear in the study's shuffled order
        let order = studyShuffle(count: 6, seed: 34522)
        let frameSequence = rows.map(\.file).reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } }
        XCTAssertEqual(frameSequence, order.map { version.info.frames[$0].file }.filter { frameSequence.contains($0) })
        let plan = try version.folds()
        XCTAssertEqual(plan, studyFolds(count: version.patchCount, k: 3))

        // same recipe again: same version, nothing rebuilt
        let again = try DatasetMaterializer.build(a.recipe, store: a.store, dataFolder: a.dataFolder)
        XCTAssertTrue(again.reused)
        XCTAssertEqual(again.version.versionId, version.versionId)

        // a second data folder over the same inputs, another job count: same id, same bytes
        let b = try DatasetFixture()
        defer { b.remove() }
        let other = try DatasetMaterializer.build(b.recipe, store: b.store, dataFolder: b.dataFolder, jobs: 1)
        XCTAssertEqual(other.version.versionId, version.versionId)
        for name in VersionFolder.dataFiles + [VersionFolder.manifestName] {
            XCTAssertEqual(try Data(contentsOf: other.version.folder.appendingPathComponent(name)),
                           try Data(contentsOf: version.folder.appendingPathComponent(name)), name)
        }
        XCTAssertEqual(try DatasetRegistry.versions(named: "au5", in: a.store).count, 1)

        // another parameter, another version
        var histogram = a.recipe
        histogram.rescale = .histogram
        let third = try DatasetMaterializer.build(histogram, store: a.store, dataFolder: a.dataFolder)
        XCTAssertNotEqual(third.version.versionId, version.versionId)
        let values = try XCTUnwrap(third.version.images().float32Values)
        XCTAssertTrue(values.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    func testGroupedFoldsKeepFramesApart() throws {
        let fixture = try DatasetFixture(frames: 7, sessions: 3)
        defer { fixture.remove() }
        var recipe = fixture.recipe
        recipe.groupFoldsBy = .frame
        let version = try DatasetMaterializer.build(recipe, store: fixture.store, dataFolder: fixture.dataFolder).version
        let rows = try version.patchRows()
        let plan = try version.folds()
        XCTAssertEqual(plan.rule, .frame)
        for fold in plan.folds {
            let train = Set(fold.train.map { rows[$0].file }), test = Set(fold.test.map { rows[$0].file })
            XCTAssertTrue(train.isDisjoint(with: test), "fold \(fold.fold) leaks a frame")
        }
        recipe.groupFoldsBy = .session
        let bySession = try DatasetMaterializer.build(recipe, store: fixture.store, dataFolder: fixture.dataFolder).version
        let sessionRows = try bySession.patchRows()
        for fold in try bySession.folds().folds {
            let sets = [fold.train, fold.validation, fold.test].map { Set($0.map { sessionRows[$0].session }) }
            XCTAssertTrue(sets[0].isDisjoint(with: sets[2]) && sets[1].isDisjoint(with: sets[2]), "fold \(fold.fold) leaks a session")
        }
        recipe.folds = 5
        XCTAssertThrowsError(try DatasetMaterializer.build(recipe, store: fixture.store, dataFolder: fixture.dataFolder)) { error in
            XCTAssertTrue("\(error)".contains("3 distinct sessions cannot make 5 folds"), "\(error)")
        }
        XCTAssertEqual(try DatasetRegistry.versions(named: "au5", in: fixture.store).count, 2)
    }

    func testMissingInputStopsBeforeAnyWork() throws {
        let fixture = try DatasetFixture(frames: 3)
        defer { fixture.remove() }
        let victim = try XCTUnwrap(fixture.store.allFrames().first)
        try FileManager.default.removeItem(atPath: victim.path!)
        XCTAssertThrowsError(try DatasetMaterializer.build(fixture.recipe, store: fixture.store, dataFolder: fixture.dataFolder)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(victim.fileName), text)
            XCTAssertTrue(text.contains("frame not on disk"), text)
            XCTAssertTrue(text.contains("hrtem fetch --where 'material = \"Au\""), text)
        }
        XCTAssertEqual(try DatasetRegistry.versions(in: fixture.store).count, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.dataFolder.datasetsFolder.path))
    }

    func testVerifyFindsAFlippedByte() throws {
        let fixture = try DatasetFixture(frames: 3)
        defer { fixture.remove() }
        let version = try DatasetMaterializer.build(fixture.recipe, store: fixture.store, dataFolder: fixture.dataFolder).version
        let url = version.imagesFile
        var bytes = try Data(contentsOf: url)
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: url)
        let problems = try version.verify()
        XCTAssertEqual(problems.count, 1)
        XCTAssertTrue(problems[0].hasPrefix("images.npy: SHA-256"), problems[0])
    }

    func testRecipeFilesOfTheProjectAreValid() throws {
        let folder = packageRoot.appendingPathComponent("catalog/recipes")
        let store = try CatalogStore()
        let recipes = try RecipeStore.importFolder(folder, into: store)
        XCTAssertGreaterThanOrEqual(recipes.count, 10)
        let names = Set(recipes.map(\.name))
        for model in ["Au_2p2nm_330kx_423e_Std_UTC_FFCorr_Team05", "Au_5nm_330kx_423e_UTC_Team05_Std_Sess0821FFCorr",
                      "Au_10nm_330kx_425e_Std_UTC_FFCorr_Team05", "Au_5nm_330kx_80e_Std_UTC_FFCorr_Team05",
                      "Au_5nm_330kx_884e_Std_UTC_FFCorr_Team05", "Ag_5nm_330kx_423e_Std_UTC_FFCorr_Team05",
                      "CdSe_5nm_330kx_421e_Std_UTC_FFCorr_Team05", "Au_5nm_160kx_425e_Std_UTC_FFCorr_Team05",
                      "Au_5nm_205kx_420e_Std_UTC_FFCorr_Team05", "Au_5nm_260kx_450e_Std_UTC_FFCorr_Team05"] {
            XCTAssertTrue(names.contains(model), model)
        }
        XCTAssertEqual(try RecipeStore.recipe(named: "Ag_5nm_330kx_423e_Std_UTC_FFCorr_Team05", in: store)?.seed, 34522)
    }

    func testAgQueryOnTheRealTableResolvesToFourteenFramesAndTheStudyFolds() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let store = try CatalogStore()
        _ = try MetadataImporter.importTable(Data(contentsOf: reference.appendingPathComponent("Dataset_metadata.csv")),
                                             source: "Dataset_metadata.csv", into: store)
        _ = try RecipeStore.importFolder(packageRoot.appendingPathComponent("catalog/recipes"), into: store)
        let recipe = try XCTUnwrap(RecipeStore.recipe(named: "Ag_5nm_330kx_423e_Std_UTC_FFCorr_Team05", in: store))
        let frames = try store.frames(matching: recipe.query)
        XCTAssertEqual(frames.count, 14)
        // the image-level shuffle of those 14 frames, as NumPy's legacy generator gives it
        XCTAssertEqual(studyShuffle(count: frames.count, seed: UInt32(recipe.seed)), [12, 11, 3, 9, 7, 6, 10, 5, 4, 2, 0, 8, 13, 1])
        // the study's fold rule for its 430 patches
        let plan = studyFolds(count: 430, k: recipe.folds)
        XCTAssertEqual(plan.folds.map(\.test.count), [86, 86, 86, 86, 86])
        XCTAssertEqual(plan.folds.map(\.validation.count), [43, 43, 43, 43, 43])
        XCTAssertEqual(plan.folds.map(\.train.count), [301, 301, 301, 301, 301])
        XCTAssertEqual(plan.folds.map(\.seed), [962, 1662, 621, 72115, 45521])
        // nothing is fetched: the build stops before any work, listing all 14 and the fetch command
        let folder = try makeTemporaryFolder("hrtem-ag")
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertThrowsError(try DatasetMaterializer.resolve(recipe, store: store, dataFolder: DataFolder(url: folder))) { error in
            XCTAssertTrue("\(error)".contains("14 of 14 inputs are missing"), "\(error)")
            XCTAssertTrue("\(error)".contains("hrtem fetch --where"), "\(error)")
        }
    }
}
