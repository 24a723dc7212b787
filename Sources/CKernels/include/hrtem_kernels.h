#ifndef HRTEM_KERNELS_H
#define HRTEM_KERNELS_H

/* Numeric kernels of the Segmentation module, in C so that they are compiled with the C
 * compiler's optimizer and, on x86-64, three times (baseline, AVX2+FMA, AVX-512) with the variant
 * picked at run time: the package is built for baseline x86-64, where Swift's SIMD types lower to SSE.
 * Every kernel sums in a fixed order, so results are deterministic on a given machine. */

/* The best instruction set the CPU has: 0 generic, 1 AVX2+FMA, 2 AVX-512VL (32 vector registers).
 * Every kernel below takes the level to run as its first argument (the caller's choice, so
 * threads running different settings do not interfere); a level above the best runs the best.
 * Variants sum in the same order except where a wider register block changes it. */
int hrtem_kernels_best_level(void);

/* One image's k x k convolution (k <= 7, odd; dilation d; zero "same" padding):
 * out[o][y][x] (+)= bias[o] + sum_i sum_taps W[o/4][i][tap][o%4] * in[i][y + (ky - r) d][x + (kx - r) d]
 * for inCount input planes and outCount output planes of h x w, weights packed as
 * [outCount/4 rounded up][inCount][k*k][4] (zero past outCount), bias may be NULL. With `accumulate`
 * the result is added to `out`; `relu` clamps the stored value at zero. Rows are zero-bordered band
 * by band into a per-thread buffer that stays in cache. With `pointOut`, the same pass also writes
 * the 1 x 1 convolution pointOut[o] = pointBias[o] + sum_i P[o/4][i][o%4] * in[i] (pointCount
 * planes, P packed like the weights with k = 1, pointBias may be NULL), reading each band once.
 * With `low`, the last lowCount of the inCount input channels are low's planes of h/2 x w/2
 * upsampled x2 (nearest) and `in` holds only the first inCount - lowCount: a U-Net's
 * [skip, upsample(low)] concatenation, read without being built. */
void hrtem_conv_image(int level, const float *in, long inCount, const float *low, long lowCount, float *out, long outCount,
                      long h, long w, long k, long d, const float *weights, const float *bias, int accumulate, int relu,
                      const float *pointWeights, const float *pointBias, float *pointOut, long pointCount);

/* One image's k x k convolution backward: totals[(o * inCount + i) * k*k + tap] += the sum over
 * pixels of g[o] x the tap-shifted in[i] (each row's float sum folded into double); and when
 * gradIn is given, gradIn (+)= the convolution of g by `backWeights` (the mirrored transposed
 * weights, packed as for hrtem_conv_image with inCount and outCount swapped; added with
 * `accumulate`, else written). With `pointG`, the output gradient (pointCount planes) of a 1 x 1
 * layer over the same input: pointTotals[o * inCount + i] += its weight gradient, and when gradIn
 * is given gradIn += its input gradient, by `pointBackWeights` (its weights transposed,
 * [inCount][pointCount]), from the same pass. Band by band, so each band of g is read once for
 * both. */
void hrtem_conv_backward_image(int level, const float *in, long inCount, const float *g, long outCount, long h, long w, long k,
                               long d, double *totals, const float *backWeights, float *gradIn, int accumulate,
                               const float *pointG, long pointCount, double *pointTotals, const float *pointBackWeights);

/* 1 x 1 convolution over planes of `plane` pixels: out[o][p] (+)= bias[o] + sum_i w[o * inCount + i] * x[i][p]
 * (bias may be NULL), ReLU on the stored value when `relu`. */
void hrtem_pointwise(int level, const float *x, long inCount, float *out, long outCount, long plane,
                     const float *w, const float *bias, int accumulate, int relu);

/* totals[o * inCount + i] += sum_p g[o][p] * x[i][p] (the 1 x 1 convolution's weight gradient). */
void hrtem_pointwise_weight_gradient(int level, const float *x, long inCount, const float *g, long outCount, long plane,
                                     double *totals);

/* Sum of n floats: eight-lane float partial sums over blocks of 1024, each block folded into double. */
double hrtem_blocked_sum(int level, const float *p, long n);

/* BatchNorm's per-plane statistics: sums[0] += sum of p[i], sums[1] += sum of p[i]^2 (float
 * partials over blocks of 1024, folded into double). */
void hrtem_moments(int level, const float *p, long n, double *sums);

/* BatchNorm backward, first pass over a plane: with `activation` (the output of a ReLU that follows),
 * g[i] = 0 where activation[i] <= 0 first, in place; then sums[0] += sum g[i] and
 * sums[1] += sum g[i] (x[i] - mean), blocked as hrtem_moments. */
void hrtem_bn_backward_sums(int level, float *g, const float *activation, const float *x, float mean, long n, double *sums);

/* out[i] = a x[i] + b (+ residual[i]), clamped at zero when `relu`; out may be x or residual. */
void hrtem_affine(int level, const float *x, float a, float b, const float *residual, int relu, float *out, long n);

/* BatchNorm backward, second pass: out[i] = a g[i] + c x[i] + k; out may be g. */
void hrtem_bn_backward_apply(int level, const float *g, const float *x, float a, float c, float k, float *out, long n);

/* Softmax cross-entropy of one image: `logits` is k planes of n pixels, `labels` n class indices.
 * Returns the sum over pixels of -ln softmax[label] (float sums over blocks of 1024 pixels folded
 * into double); when `grad` is given writes (softmax - onehot(label)) * scale into its k planes.
 * exp and ln are the kernels' own vector polynomials (about 2 ulp). */
double hrtem_softmax_cross_entropy(int level, const float *logits, long k, long n, const unsigned char *labels,
                                   float *grad, float scale);

#endif
