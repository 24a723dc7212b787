#ifndef HRTEM_KERNELS_H
#define HRTEM_KERNELS_H

/* Numeric kernels of the Segmentation module, in C so that they are compiled with the C
 * compiler's optimizer and, on x86-64, twice (baseline and AVX2+FMA) with the variant picked at
 * run time: the package is built for baseline x86-64, where Swift's SIMD types lower to SSE.
 * Every kernel sums in a fixed order, so results are deterministic on a given machine. */

/* Picks the kernels' instruction set: 0 generic, 1 AVX2+FMA, 2 AVX-512VL (32 vector registers),
 * -1 (or more than the CPU has) the best the CPU has, which is the default. Returns the level in
 * use. Variants sum in the same order except where a wider register block changes it. */
int hrtem_kernels_use(int requested);
int hrtem_kernels_level(void);

/* Rows y0..<y1 of: out[o][y][x] (+)= bias[o] + sum_i sum_taps W[o/4][i][tap][o%4] * in[i][y + ky d][x + kx d]
 * where `in` is inCount planes padded by pad = (k-1)/2*d to (h + 2 pad) x pw, pw = w rounded up
 * to 16 + 2 pad, and `out` is outCount planes of h x w (k <= 7). With `accumulate` the result is
 * added to `out`; `relu` clamps the stored value at zero. Four output channels x 16 pixels a pass. */
void hrtem_conv_rows(const float *in, long inCount, float *out, long outCount, long h, long w, long k, long d,
                     const float *weights, const float *bias, int accumulate, int relu, long y0, long y1);

/* totals[(o * inCount + i) * k*k + tap] += sum over rows y of (float row sum over x of
 * g[o][y][x] * in[i][y + ky d][x + kx d]); `in` padded as for hrtem_conv_rows. */
void hrtem_conv_weight_rows(const float *in, long inCount, const float *g, long outCount, long h, long w,
                            long k, long d, double *totals);

/* 1 x 1 convolution over planes of `plane` pixels: out[o][p] (+)= bias[o] + sum_i w[o * inCount + i] * x[i][p]
 * (bias may be NULL), ReLU on the stored value when `relu`. */
void hrtem_pointwise(const float *x, long inCount, float *out, long outCount, long plane,
                     const float *w, const float *bias, int accumulate, int relu);

/* totals[o * inCount + i] += sum_p g[o][p] * x[i][p] (the 1 x 1 convolution's weight gradient). */
void hrtem_pointwise_weight_gradient(const float *x, long inCount, const float *g, long outCount, long plane,
                                     double *totals);

/* g[i] = a[i] > 0 ? g[i] : 0 (the ReLU's backward, in place). */
void hrtem_relu_mask(float *g, const float *a, long n);

/* Sum of n floats: eight-lane float partial sums over blocks of 1024, each block folded into double. */
double hrtem_blocked_sum(const float *p, long n);

/* Softmax cross-entropy of one image: `logits` is k planes of n pixels, `labels` n class indices.
 * Returns the sum over pixels of -ln softmax[label] (float sums over blocks of 1024 pixels folded
 * into double); when `grad` is given writes (softmax - onehot(label)) * scale into its k planes.
 * exp and ln are the kernels' own vector polynomials (about 2 ulp). */
double hrtem_softmax_cross_entropy(const float *logits, long k, long n, const unsigned char *labels,
                                   float *grad, float scale);

#endif
