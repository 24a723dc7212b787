import Foundation
import Micrograph

/// Poisson deviates, exact for every mean (no normal approximation).
///
/// Means below 10: inversion by sequential search (one uniform, O(mean) steps). Means of 10 and
/// more: Hormann's transformed rejection with squeeze, PTRS (W. Hormann, "The transformed
/// rejection method for generating Poisson random variables", Insurance: Mathematics and
/// Economics 12, 1993), the algorithm NumPy uses; about 1.1 pairs of uniforms per deviate and
/// a logarithm only off the fast path. Both draw only from the generator passed in, so the
/// same generator state gives the same deviate on every platform whose `log`/`exp` agree.
@inline(__always)
public func poissonDeviate(mean: Double, using random: inout SplitMix64) -> Double {
    if !(mean > 0) { return 0 }
    if mean < 10 { return poissonByInversion(mean: mean, using: &random) }
    return poissonPTRS(mean: mean, using: &random)
}

@inline(__always)
func poissonByInversion(mean: Double, using random: inout SplitMix64) -> Double {
    var probability = exp(-mean)
    var cumulative = probability
    let u = random.nextUnitDouble()
    var k = 0.0
    // The tail beyond mean + 40 sqrt(mean) + 40 has probability far below 2^-53.
    let cap = mean + 40 * mean.squareRoot() + 40
    while u > cumulative && k < cap {
        k += 1
        probability *= mean / k
        cumulative += probability
    }
    return k
}

@inline(__always)
func poissonPTRS(mean lambda: Double, using random: inout SplitMix64) -> Double {
    let sqrtLambda = lambda.squareRoot()
    let b = 0.931 + 2.53 * sqrtLambda
    let a = -0.059 + 0.02483 * b
    let inverseAlpha = 1.1239 + 1.1328 / (b - 3.4)
    let vr = 0.9277 - 3.6224 / (b - 2)
    while true {
        let u = random.nextUnitDouble() - 0.5
        let v = random.nextUnitDouble()
        let us = 0.5 - abs(u)
        let k = ((2 * a / us + b) * u + lambda + 0.43).rounded(.down)
        if us >= 0.07 && v <= vr { return k }
        if k < 0 || (us < 0.013 && v > us) { continue }
        // Off the fast path (about 14% of draws): the exact acceptance test.
        if log(v) + log(inverseAlpha) - log(a / (us * us) + b) <= -lambda + k * log(lambda) - logGamma(k + 1) {
            return k
        }
    }
}

/// log Gamma(x) for x >= 1 by Stirling's series (shifted up to x >= 7), as NumPy's `random_loggam`.
@inline(__always)
func logGamma(_ x: Double) -> Double {
    if x == 1 || x == 2 { return 0 }
    let coefficients: (Double, Double, Double, Double, Double, Double, Double, Double, Double, Double) = (
        8.333333333333333e-02, -2.777777777777778e-03, 7.936507936507937e-04, -5.952380952380952e-04,
        8.417508417508418e-04, -1.917526917526918e-03, 6.410256410256410e-03, -2.955065359477124e-02,
        1.796443723688307e-01, -1.39243221690590e+00)
    let shift = x < 7 ? Int(7 - x) : 0
    var x0 = x + Double(shift)
    let inverseSquare = (1 / x0) * (1 / x0)
    var series = coefficients.9
    series = series * inverseSquare + coefficients.8
    series = series * inverseSquare + coefficients.7
    series = series * inverseSquare + coefficients.6
    series = series * inverseSquare + coefficients.5
    series = series * inverseSquare + coefficients.4
    series = series * inverseSquare + coefficients.3
    series = series * inverseSquare + coefficients.2
    series = series * inverseSquare + coefficients.1
    series = series * inverseSquare + coefficients.0
    var result = series / x0 + 0.5 * 1.8378770664093453 + (x0 - 0.5) * log(x0) - x0
    if shift > 0 {
        for _ in 1...shift {
            result -= log(x0 - 1)
            x0 -= 1
        }
    }
    return result
}
