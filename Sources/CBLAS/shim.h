#ifndef HRTEM_CBLAS_SHIM_H
#define HRTEM_CBLAS_SHIM_H
#include <cblas.h>
#include <string.h>

/* Direct-convolution kernels for the Segmentation module (Conv2d's thin layers). Written in C
 * so that on x86-64 they can be compiled twice, generic and for AVX2+FMA, and picked at run
 * time: the package is built for baseline x86-64, where Swift's SIMD types lower to SSE only.
 * Both variants sum in the same fixed order (results are deterministic on a given machine). */

typedef float hrtem_v8 __attribute__((vector_size(32)));
typedef int hrtem_i8 __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) hrtem_v8 hrtem_load8(const float *p) {
    hrtem_v8 v; memcpy(&v, p, sizeof v); return v;
}
static inline __attribute__((always_inline)) void hrtem_store8(float *p, hrtem_v8 v) { memcpy(p, &v, sizeof v); }

/* Rows y0..<y1 of: out[o][y][x] (+)= bias[o] + sum_i sum_taps W[o/4][i][tap][o%4] * in[i][y + ky d][x + kx d]
 * where `in` is inCount planes padded by pad = (k-1)/2*d to (h + 2 pad) x pw, pw = w rounded up
 * to 16 + 2 pad, and `out` is outCount planes of h x w. Four output channels x 16 pixels per pass. */
static inline __attribute__((always_inline)) void hrtem_conv_rows_body(
    const float *in, long inCount, float *out, long outCount, long h, long w, long k, long d,
    const float *weights, const float *bias, int accumulate, int relu, long y0, long y1) {
    long pad = (k - 1) / 2 * d, pw = ((w + 15) & ~15L) + 2 * pad, pplane = (h + 2 * pad) * pw;
    long plane = h * w, taps = k * k, blocks = (outCount + 3) / 4;
    for (long y = y0; y < y1; y++) {
        for (long ob = 0; ob < blocks; ob++) {
            const float *wb = weights + ob * inCount * taps * 4;
            long valid = outCount - ob * 4 < 4 ? outCount - ob * 4 : 4;
            float b[4] = {0, 0, 0, 0};
            if (bias) for (long j = 0; j < valid; j++) b[j] = bias[ob * 4 + j];
            for (long x = 0; x < w; x += 16) {
                /* Named accumulators (not an array) so they stay in registers. */
                hrtem_v8 a00 = (hrtem_v8){0} + b[0], a01 = a00, a10 = (hrtem_v8){0} + b[1], a11 = a10;
                hrtem_v8 a20 = (hrtem_v8){0} + b[2], a21 = a20, a30 = (hrtem_v8){0} + b[3], a31 = a30;
                for (long i = 0; i < inCount; i++) {
                    const float *base = in + i * pplane + y * pw + x;
                    const float *wi = wb + i * taps * 4;
                    for (long ky = 0; ky < k; ky++) {
                        const float *row = base + ky * d * pw;
                        for (long kx = 0; kx < k; kx++) {
                            hrtem_v8 v0 = hrtem_load8(row + kx * d), v1 = hrtem_load8(row + kx * d + 8);
                            const float *t = wi + (ky * k + kx) * 4;
                            float t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3];
                            a00 += v0 * t0; a01 += v1 * t0; a10 += v0 * t1; a11 += v1 * t1;
                            a20 += v0 * t2; a21 += v1 * t2; a30 += v0 * t3; a31 += v1 * t3;
                        }
                    }
                }
                hrtem_v8 a[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
                long lanes = w - x < 16 ? w - x : 16;
                for (long j = 0; j < valid; j++) {
                    float *o = out + (ob * 4 + j) * plane + y * w + x;
                    if (lanes == 16) {
                        for (int half = 0; half < 2; half++) {
                            hrtem_v8 v = a[j][half];
                            if (accumulate) v += hrtem_load8(o + 8 * half);
                            if (relu) { hrtem_v8 zero = {0}; v = (hrtem_v8)((hrtem_i8)v & (v > zero)); }
                            hrtem_store8(o + 8 * half, v);
                        }
                    } else {
                        float lane[16];
                        hrtem_store8(lane, a[j][0]); hrtem_store8(lane + 8, a[j][1]);
                        for (long l = 0; l < lanes; l++) {
                            float v = lane[l] + (accumulate ? o[l] : 0.0f);
                            o[l] = relu && v < 0 ? 0.0f : v;
                        }
                    }
                }
            }
        }
    }
}

/* totals[(o * inCount + i) * k*k + tap] += sum over rows y of (float row sum over x of
 * g[o][y][x] * in[i][y + ky d][x + kx d]); `in` padded as for hrtem_conv_rows_body. */
static inline __attribute__((always_inline)) void hrtem_conv_weight_rows_body(
    const float *in, long inCount, const float *g, long outCount, long h, long w, long k, long d, double *totals) {
    long pad = (k - 1) / 2 * d, pw = ((w + 15) & ~15L) + 2 * pad, pplane = (h + 2 * pad) * pw;
    long plane = h * w, taps = k * k, full = w & ~7L;
    for (long y = 0; y < h; y++) {
        for (long o = 0; o < outCount; o++) {
            const float *gr = g + o * plane + y * w;
            for (long i = 0; i < inCount; i++) {
                const float *base = in + i * pplane + y * pw;
                hrtem_v8 s[49];
                for (long t = 0; t < taps; t++) s[t] = (hrtem_v8){0};
                for (long x = 0; x < full; x += 8) {
                    hrtem_v8 gv = hrtem_load8(gr + x);
                    for (long ky = 0; ky < k; ky++)
                        for (long kx = 0; kx < k; kx++)
                            s[ky * k + kx] += gv * hrtem_load8(base + ky * d * pw + x + kx * d);
                }
                double *tot = totals + (o * inCount + i) * taps;
                for (long ky = 0; ky < k; ky++)
                    for (long kx = 0; kx < k; kx++) {
                        hrtem_v8 v = s[ky * k + kx];
                        float sum = ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
                        const float *src = base + ky * d * pw + kx * d;
                        for (long x = full; x < w; x++) sum += gr[x] * src[x];
                        tot[ky * k + kx] += (double)sum;
                    }
            }
        }
    }
}

#define HRTEM_CONV_ARGS const float *in, long inCount, float *out, long outCount, long h, long w, long k, long d, \
    const float *weights, const float *bias, int accumulate, int relu, long y0, long y1
#define HRTEM_CONV_PASS(K) in, inCount, out, outCount, h, w, K, d, weights, bias, accumulate, relu, y0, y1
#define HRTEM_WEIGHT_ARGS const float *in, long inCount, const float *g, long outCount, long h, long w, long k, long d, double *totals
#define HRTEM_WEIGHT_PASS(K) in, inCount, g, outCount, h, w, K, d, totals

static void hrtem_conv_rows_generic(HRTEM_CONV_ARGS) {
    if (k == 3) hrtem_conv_rows_body(HRTEM_CONV_PASS(3)); else hrtem_conv_rows_body(HRTEM_CONV_PASS(k));
}
static void hrtem_conv_weight_rows_generic(HRTEM_WEIGHT_ARGS) {
    if (k == 3) hrtem_conv_weight_rows_body(HRTEM_WEIGHT_PASS(3)); else hrtem_conv_weight_rows_body(HRTEM_WEIGHT_PASS(k));
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void hrtem_conv_rows_avx2(HRTEM_CONV_ARGS) {
    if (k == 3) hrtem_conv_rows_body(HRTEM_CONV_PASS(3)); else hrtem_conv_rows_body(HRTEM_CONV_PASS(k));
}
__attribute__((target("avx2,fma"))) static void hrtem_conv_weight_rows_avx2(HRTEM_WEIGHT_ARGS) {
    if (k == 3) hrtem_conv_weight_rows_body(HRTEM_WEIGHT_PASS(3)); else hrtem_conv_weight_rows_body(HRTEM_WEIGHT_PASS(k));
}
static inline int hrtem_has_avx2(void) {
    static int known = -1;
    if (known < 0) { __builtin_cpu_init(); known = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
    return known;
}
#endif

/* g[i] = a[i] > 0 ? g[i] : 0 (the ReLU's backward), vectorized by the compiler. */
static inline void hrtem_relu_mask(float *g, const float *a, long n) {
    for (long i = 0; i < n; i++) g[i] = a[i] > 0.0f ? g[i] : 0.0f;
}

/* Sum of n floats: eight-lane float partial sums over blocks of 1024, each block folded into
 * double (a fixed order: deterministic). */
static inline double hrtem_blocked_sum(const float *p, long n) {
    double total = 0;
    long i = 0;
    while (i < n) {
        long end = i + 1024 < n ? i + 1024 : n;
        hrtem_v8 acc = {0};
        for (; i + 8 <= end; i += 8) acc += hrtem_load8(p + i);
        float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for (; i < end; i++) s += p[i];
        total += (double)s;
    }
    return total;
}

/* Dispatchers called from Swift (k <= 7). */
static inline void hrtem_conv_rows(HRTEM_CONV_ARGS) {
#if defined(__x86_64__)
    if (hrtem_has_avx2()) { hrtem_conv_rows_avx2(HRTEM_CONV_PASS(k)); return; }
#endif
    hrtem_conv_rows_generic(HRTEM_CONV_PASS(k));
}
static inline void hrtem_conv_weight_rows(HRTEM_WEIGHT_ARGS) {
#if defined(__x86_64__)
    if (hrtem_has_avx2()) { hrtem_conv_weight_rows_avx2(HRTEM_WEIGHT_PASS(k)); return; }
#endif
    hrtem_conv_weight_rows_generic(HRTEM_WEIGHT_PASS(k));
}
#endif
