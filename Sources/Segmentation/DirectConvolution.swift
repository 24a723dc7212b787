import Foundation

/// Direct convolution for the network's thin layers (few input and output channels at full
/// resolution), where im2col would write `in x k x k` copies of each plane and sgemm's packing
/// would move them again: here every output row is accumulated in place from shifted input
/// rows, which stay in L1. Same results as the im2col path up to float rounding order.
extension Conv2d {
    /// Whether this layer takes the direct path: few multiply-adds per pixel.
    var usesDirectKernel: Bool { kernel > 1 && inChannels * outChannels <= Conv2d.directLimit }

    /// in x out products at or below which a k x k convolution runs direct (tests lower it to 0
    /// to force im2col, or raise it to force direct).
    nonisolated(unsafe) public static var directLimit = 64

    /// out[image, co] += sum over ci, taps of w[co, ci, tap] * shifted in[image, ci]; `weights`
    /// is `[outCount, inCount, k, k]`, `flip` mirrors the taps (for the input gradient, which is
    /// the convolution of the output gradient with the transposed, mirrored kernel).
    static func directAccumulate(input: UnsafePointer<Float>, inCount: Int, output: UnsafeMutablePointer<Float>, outCount: Int,
                                 height h: Int, width w: Int, kernel k: Int, dilation d: Int,
                                 weight: (Int, Int, Int, Int) -> Float, flip: Bool) {
        let radius = (k - 1) / 2
        let plane = h * w
        for co in 0..<outCount {
            let out = output + co * plane
            for ci in 0..<inCount {
                let source = input + ci * plane
                for ky in 0..<k {
                    let dy = (flip ? radius - ky : ky - radius) * d
                    for kx in 0..<k {
                        let dx = (flip ? radius - kx : kx - radius) * d
                        let tap = weight(co, ci, ky, kx)
                        if tap == 0 { continue }
                        let x0 = max(0, -dx), x1 = min(w, w - dx)
                        guard x0 < x1 else { continue }
                        for y in max(0, -dy)..<min(h, h - dy) {
                            let o = out + y * w
                            let s = source + (y + dy) * w + dx
                            for x in x0..<x1 { o[x] += tap * s[x] }
                        }
                    }
                }
            }
        }
    }

    func directForward(_ input: Tensor, into output: Tensor, image: Int) {
        let w = weight.value.data, cin = inChannels, k = kernel
        Conv2d.directAccumulate(input: input.plane(image, 0), inCount: cin, output: output.plane(image, 0), outCount: outChannels,
                                height: input.h, width: input.w, kernel: k, dilation: dilation,
                                weight: { co, ci, ky, kx in w[((co * cin + ci) * k + ky) * k + kx] }, flip: false)
    }

    /// gradInput[image] += conv(gradOutput[image], W^T mirrored).
    func directBackwardData(_ gradOutput: Tensor, into gradInput: Tensor, image: Int) {
        let w = weight.value.data, cin = inChannels, k = kernel
        Conv2d.directAccumulate(input: gradOutput.plane(image, 0), inCount: outChannels, output: gradInput.plane(image, 0),
                                outCount: cin, height: gradOutput.h, width: gradOutput.w, kernel: k, dilation: dilation,
                                weight: { ci, co, ky, kx in w[((co * cin + ci) * k + ky) * k + kx] }, flip: true)
    }

    /// partial[co, ci, ky, kx] += sum over pixels of gradOutput[image, co] x shifted input[image, ci].
    func directBackwardWeights(input: Tensor, gradOutput: Tensor, image: Int, into partial: UnsafeMutablePointer<Float>) {
        let h = input.h, w = input.w, k = kernel, d = dilation, radius = (k - 1) / 2, plane = h * w
        for co in 0..<outChannels {
            let g = gradOutput.plane(image, co)
            for ci in 0..<inChannels {
                let source = input.plane(image, ci)
                for ky in 0..<k {
                    let dy = (ky - radius) * d
                    for kx in 0..<k {
                        let dx = (kx - radius) * d
                        let x0 = max(0, -dx), x1 = min(w, w - dx)
                        guard x0 < x1 else { continue }
                        var total: Double = 0
                        for y in max(0, -dy)..<min(h, h - dy) {
                            total += Double(dotProduct(g + y * w + x0, source + (y + dy) * w + dx + x0, count: x1 - x0))
                        }
                        partial[((co * inChannels + ci) * k + ky) * k + kx] += Float(total)
                    }
                }
            }
        }
        _ = plane
    }
}

/// Dot product with eight-lane float partial sums (a fixed order, so deterministic).
@inline(__always)
func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    var accumulator = SIMD8<Float>()
    var i = 0
    let rawA = UnsafeRawPointer(a), rawB = UnsafeRawPointer(b)
    while i + 8 <= count {
        accumulator += rawA.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            * rawB.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    var total = accumulator.sum()
    while i < count { total += a[i] * b[i]; i += 1 }
    return total
}
