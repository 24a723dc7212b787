import Experiments
import XCTest

/// The recommendation rule on stated evidence: nearest tested conditions, then expected Dice.
final class RecommendationTests: XCTestCase {
    let low = AcquisitionConditions(dose: 80, pixelScale: 0.02)
    let high = AcquisitionConditions(dose: 884, pixelScale: 0.02)
    let coarse = AcquisitionConditions(dose: 884, pixelScale: 0.042)

    /// Three training datasets, two fold models each, scored on all three.
    var evidence: [ModelEvidence] {
        let table: [(String, [String: Double])] = [
            ("low", ["low": 0.90, "high": 0.70, "coarse": 0.50]),
            ("high", ["low": 0.60, "high": 0.93, "coarse": 0.55]),
            ("coarse", ["low": 0.40, "high": 0.65, "coarse": 0.91]),
        ]
        let conditions = ["low": low, "high": high, "coarse": coarse]
        return table.flatMap { train, scores in
            scores.flatMap { test, dice in
                (0..<2).map { fold in
                    ModelEvidence(modelID: "\(train)-f\(fold)", modelFolder: nil, trainDatasetID: "\(train)-id",
                                  trainDatasetName: train, testDatasetID: "\(test)-id", testDatasetName: test,
                                  testConditions: conditions[test]!, hardDice: dice + (fold == 0 ? 0.01 : -0.01))
                }
            }
        }
    }

    func testDistanceIsTheStatedRule() {
        XCTAssertEqual(low.distance(to: high)!, log10(884.0 / 80), accuracy: 1e-12)
        XCTAssertEqual(high.distance(to: coarse)!, log2(0.042 / 0.02), accuracy: 1e-12)
        XCTAssertEqual(AcquisitionConditions(dose: nil, pixelScale: 0.04).distance(to: high)!, 1, accuracy: 1e-12,
                       "an unknown dose adds nothing")
        XCTAssertNil(AcquisitionConditions(dose: 80, pixelScale: nil).distance(to: AcquisitionConditions(dose: nil, pixelScale: 0.02)))
    }

    func testPicksTheModelTrainedForTheFramesConditions() {
        let forLow = Recommendation(conditions: AcquisitionConditions(dose: 85, pixelScale: 0.02), evidence: evidence)
        XCTAssertNil(forLow.warning)
        XCTAssertEqual(forLow.ranking.map(\.trainDatasetName), ["low", "high", "coarse"])
        XCTAssertEqual(forLow.ranking[0].expectedHardDice, 0.90, accuracy: 1e-12)
        XCTAssertEqual(forLow.ranking[0].hardDiceSpread, 0.01, accuracy: 1e-12)
        XCTAssertEqual(forLow.ranking[0].nearestTestDatasetName, "low")

        let forCoarse = Recommendation(conditions: AcquisitionConditions(dose: 900, pixelScale: 0.04), evidence: evidence)
        XCTAssertNil(forCoarse.warning)
        XCTAssertEqual(forCoarse.ranking.first?.trainDatasetName, "coarse")
        XCTAssertEqual(forCoarse.ranking.first?.nearestTestDatasetName, "coarse")
    }

    func testWarnsWhenNothingWasTestedNearby() {
        let far = Recommendation(conditions: AcquisitionConditions(dose: 20_000, pixelScale: 0.3), evidence: evidence)
        let warning = try? XCTUnwrap(far.warning)
        XCTAssertTrue(warning?.contains("no model was tested near") == true, warning ?? "no warning")
        XCTAssertTrue(far.ranking.allSatisfy { !$0.isNear })
        XCTAssertNotNil(Recommendation(conditions: low, evidence: []).warning)
    }
}
