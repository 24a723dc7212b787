import Catalog
import Micrograph
import TestSupport
import XCTest

final class StudyFileNameTests: XCTestCase {
    func testParsesEveryVariantOfTheConvention() throws {
        let full = try StudyFileName(parsing: "20211006_Au_UTC_330kx_2650e_0p1596s_01.dm3")
        XCTAssertEqual(full.date, "2021-10-06")
        XCTAssertEqual(full.material, "Au")
        XCTAssertEqual(full.support, "UTC")
        XCTAssertEqual(full.magnificationKx, 330)
        XCTAssertEqual(full.doseRate, 2650)
        XCTAssertEqual(full.exposureSeconds, 0.1596)
        XCTAssertEqual(full.dose, 422.94, accuracy: 1e-9)
        XCTAssertEqual(full.sequence, 1)
        XCTAssertEqual(full.extras, [])

        let noDate = try StudyFileName(parsing: "Au_UTC_205kX_2630e_0p1596s_12.dm3")
        XCTAssertNil(noDate.date)
        XCTAssertEqual(noDate.magnificationKx, 205)
        XCTAssertEqual(noDate.magnificationUnit, "kX")
        XCTAssertEqual(noDate.sequence, 12)

        let noSupport = try StudyFileName(parsing: "20210902_Au_160kX_1800e_0p1596s_01.dm3")
        XCTAssertNil(noSupport.support)
        XCTAssertEqual(noSupport.doseRate, 1800)

        let binned = try StudyFileName(parsing: "20211006_Au_UTC_330kx_2650e_0p1596s_2k_07.dm4")
        XCTAssertEqual(binned.extras, ["2k"])
        XCTAssertEqual(binned.sequence, 7)
        XCTAssertEqual(binned.fileExtension, "dm4")

        let cdse = try StudyFileName(parsing: "20230123_CdSe_UTC_330kx_2640e_0p1596s_03.dm3")
        XCTAssertEqual(cdse.material, "CdSe")
    }

    func testFormatsTheInverse() throws {
        let name = StudyFileName(date: "2022-02-02", material: "Ag", support: "UTC", magnificationKx: 330,
                                 doseRate: 2650, exposureSeconds: 0.1596, sequence: 4)
        XCTAssertEqual(name.fileName, "20220202_Ag_UTC_330kx_2650e_0p1596s_04.dm3")
        XCTAssertEqual(try StudyFileName(parsing: name.fileName), name)
        let fractional = StudyFileName(material: "Au", magnificationKx: 2.5, doseRate: 12.25, exposureSeconds: 0.05,
                                       extras: ["2k"], sequence: 123, sequenceWidth: 3, fileExtension: "tif")
        XCTAssertEqual(fractional.fileName, "Au_2p5kx_12p25e_0p05s_2k_123.tif")
        XCTAssertEqual(try StudyFileName(parsing: fractional.fileName), fractional)
    }

    func testRejectsNamesOutsideTheConvention() {
        for name in ["image.dm3", "20211006_Au_UTC_330kx_2650e_01.dm3", "20211006_Au_UTC_330kx_2650e_0p1596s.dm3",
                     "20211306_Au_UTC_330kx_2650e_0p1596s_01.dm3", "20211006_Au_UTC_330kx_2650e_0p1596s_01",
                     "20211006_Au_UTC_kx_2650e_0p1596s_01.dm3", "20211006_42_UTC_330kx_2650e_0p1596s_01.dm3",
                     "20211006_Au_UTC_330kx_26p5p0e_0p1596s_01.dm3"] {
            XCTAssertThrowsError(try StudyFileName(parsing: name), name) { error in
                XCTAssertTrue(error is FormatError, "\(error)")
                XCTAssertTrue("\(error)".contains(name), "\(error)")
            }
        }
    }

    /// Every file name of the study's table parses, agrees with its row's dose within 1%, and
    /// formats back to itself.
    func testEveryReferenceNameRoundTrips() throws {
        guard let reference = referenceFolder else { throw XCTSkip(referenceMissingMessage) }
        let data = try Data(contentsOf: reference.appendingPathComponent("Dataset_metadata.csv"))
        let table = try CSVTable(data: data, file: "Dataset_metadata.csv")
        XCTAssertEqual(table.records.count, 408)
        for record in table.records.dropFirst() {
            let name = try StudyFileName(parsing: record.fields[0])
            XCTAssertEqual(name.fileName, record.fields[0])
            let dose = try XCTUnwrap(Double(record.fields[7]))
            XCTAssertEqual(name.dose, dose, accuracy: 0.01 * dose, record.fields[0])
            XCTAssertEqual(name.material, record.fields[2])
        }
    }
}
