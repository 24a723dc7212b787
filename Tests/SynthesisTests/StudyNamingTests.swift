import Foundation
import Micrograph
@testable import Synthesis
import TestSupport
import XCTest

final class StudyNamingTests: XCTestCase {
    func testMagnificationFollowsTheStudysTableElseTheCameraConstant() {
        XCTAssertEqual(StudyNaming.magnification(forPixelScale: 0.02), 330)
        XCTAssertEqual(StudyNaming.magnification(forPixelScale: 0.026), 260)
        XCTAssertEqual(StudyNaming.magnification(forPixelScale: 0.033), 205)
        XCTAssertEqual(StudyNaming.magnification(forPixelScale: 0.042), 160)
        XCTAssertEqual(StudyNaming.magnification(forPixelScale: 0.05), 132)
    }

    func testFileNamesOfTheStudysThreeDoses() {
        let date = CalendarDate(year: 2022, month: 6, day: 15)
        func name(_ dose: Double, _ scale: Double, _ number: Int = 1) -> String {
            StudyNaming.fileName(date: date, condition: SynthesisCondition(material: .gold, particleSize: 5,
                                                                           pixelScale: scale, dose: dose),
                                 number: number, fileExtension: "dm3")
        }
        XCTAssertEqual(name(80, 0.02), "20220615_Au_UTC_330kx_1000e_0p0798s_01.dm3")
        XCTAssertEqual(name(884, 0.02, 12), "20220615_Au_UTC_330kx_2770e_0p3192s_12.dm3")
        XCTAssertEqual(name(423, 0.02), "20220615_Au_UTC_330kx_2650e_0p1596s_01.dm3")
        XCTAssertEqual(name(418, 0.042), "20220615_Au_UTC_160kx_1310e_0p3192s_01.dm3")
        let cdse = SynthesisCondition(material: .cadmiumSelenide, particleSize: 5, support: .siliconNitride,
                                      pixelScale: 0.033, dose: 420)
        XCTAssertEqual(StudyNaming.fileName(date: date, condition: cdse, number: 3, fileExtension: "tif"),
                       "20220615_CdSe_SiN_205kx_2630e_0p1596s_03.tif")
        XCTAssertEqual(StudyNaming.labelFileName(forFrame: "20220615_Au_UTC_330kx_1000e_0p0798s_01.dm3"),
                       "20220615_Au_UTC_330kx_1000e_0p0798s_01_label.png")
        // Dose = rate x exposure within 1%, as `import-metadata` checks, across a wide range.
        for dose in stride(from: 10.0, through: 20000, by: 7.3) {
            for scale in [0.02, 0.042] {
                let exposure = StudyNaming.exposure(forDose: dose, pixelScale: scale)
                let rate = StudyNaming.doseRate(forDose: dose, exposure: exposure)
                XCTAssertEqual(Double(rate) * exposure, dose, accuracy: 0.01 * dose, "dose \(dose)")
            }
        }
    }

    /// Every dated file name of the study's own table is what these rules give for its row
    /// (apart from the frame number, which is copied).
    func testTheRulesReproduceTheStudysFileNames() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let text = try String(contentsOf: reference.appendingPathComponent("Dataset_metadata.csv"), encoding: .utf8)
        let lines = text.split(whereSeparator: \.isNewline).map(String.init)
        XCTAssertEqual(lines.first, StudyNaming.metadataHeader)
        let pattern = try NSRegularExpression(pattern: #"^(\d{4})(\d{2})(\d{2})_\w+?_(UTC|SiN)_\d+kx_\d+e_[0-9p]+s_(\d+)\.dm3$"#)
        var compared = 0
        for line in lines.dropFirst() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let name = fields[0]
            guard let match = pattern.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) else { continue }
            func group(_ i: Int) -> String { String(name[Range(match.range(at: i), in: name)!]) }
            let date = CalendarDate(year: Int(group(1))!, month: Int(group(2))!, day: Int(group(3))!)
            let condition = SynthesisCondition(material: Material(symbol: fields[2])!, particleSize: Double(fields[3])!,
                                               shape: ParticleShape(name: fields[4])!, support: Support(name: fields[5])!,
                                               pixelScale: Double(fields[8])!, dose: Double(fields[7])!)
            XCTAssertEqual(StudyNaming.fileName(date: date, condition: condition, number: Int(group(5))!, fileExtension: "dm3"), name)
            XCTAssertEqual(date.slashed, fields[1])
            compared += 1
        }
        XCTAssertEqual(compared, 311)
    }

    func testDatesInTheStudysThreeSpellingsAndArithmetic() {
        let date = CalendarDate(year: 2024, month: 1, day: 8)
        XCTAssertEqual(date.compact, "20240108")
        XCTAssertEqual(date.underscored, "2024_01_08")
        XCTAssertEqual(date.slashed, "01/08/24")
        XCTAssertEqual(date.adding(days: 7 * 8), CalendarDate(year: 2024, month: 3, day: 4))   // leap year
        XCTAssertEqual(CalendarDate(year: 2023, month: 12, day: 31).adding(days: 1), CalendarDate(year: 2024, month: 1, day: 1))
        XCTAssertEqual(CalendarDate(year: 1970, month: 1, day: 1).daysSinceEpoch, 0)
        for days in stride(from: -1000, to: 40000, by: 97) {
            XCTAssertEqual(CalendarDate(daysSinceEpoch: days).daysSinceEpoch, days)
        }
    }

    func testFolderNamesAndMetadataRows() {
        let date = CalendarDate(year: 2021, month: 10, day: 6)
        XCTAssertEqual(StudyNaming.folderName(date: date, material: .gold, particleSize: 2.2, support: .ultrathinCarbon),
                       "2021_10_06 2p2nm Au nanoparticles on UTC synthetic")
        let condition = SynthesisCondition(material: .cadmiumSelenide, particleSize: 5, pixelScale: 0.02, dose: 421)
        XCTAssertEqual(StudyNaming.metadataRow(fileName: "x.dm3", date: date, condition: condition, folder: "F, G"),
                       "x.dm3,10/06/21,CdSe,5,Oblong,UT Carbon,Team05,421,0.02,\"F, G\"")
    }

    func testPlanListsEveryFrameOnceAndRefusesBadParameters() throws {
        let plan = SyntheticStudyPlan(sessions: 2, framesPerCondition: 3, size: 64, pixelScales: [0.02, 0.042],
                                      doses: [80, 884], particleSizes: [2.2, 5], materials: [.gold, .cadmiumSelenide])
        try plan.validate()
        let entries = plan.entries
        XCTAssertEqual(entries.count, 2 * 3 * 2 * 2 * 2 * 2)
        XCTAssertEqual(Set(entries.map(\.framePath)).count, entries.count)
        XCTAssertEqual(Set(entries.map(\.folder)).count, 2 * 2 * 2)
        XCTAssertEqual(plan.conditions.count, 16)
        XCTAssertEqual(plan.metadataTable.split(separator: "\n").count, entries.count + 1)
        XCTAssertEqual(entries[0].date, plan.firstDate)
        XCTAssertEqual(entries.last!.date, plan.firstDate.adding(days: 7))
        XCTAssertTrue(entries.filter { $0.condition.material == .cadmiumSelenide }.allSatisfy { $0.condition.shape == .oblong })

        // A frame depends on its own key, not on the rest of the plan.
        var smaller = plan
        smaller.doses = [884]
        let entry = entries.first { $0.condition.dose == 884 && $0.session == 1 && $0.number == 2 }!
        XCTAssertEqual(plan.random(for: entry).state, smaller.random(for: entry).state)

        func refused(_ change: (inout SyntheticStudyPlan) -> Void, _ fragment: String) {
            var bad = plan
            change(&bad)
            XCTAssertThrowsError(try bad.validate()) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)")
            }
        }
        refused({ $0.sessions = 0 }, "--sessions")
        refused({ $0.doses = [] }, "--dose")
        refused({ $0.doses = [80, 80] }, "twice")
        refused({ $0.pixelScales = [-1] }, "--pixel-scale -1")
        refused({ $0.particleSizes = [0.05] }, "--particle-size")
        refused({ $0.particleSizes = [1]; $0.pixelScales = [0.3] }, "under 4 pixels")
        refused({ $0.doses = [423, 423.4] }, "same file name")
        refused({ $0.size = 4 }, "--size")
    }
}
