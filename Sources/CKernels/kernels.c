#include "hrtem_kernels.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The generic variant passes 8-lane vectors between always-inlined helpers only. */
#pragma clang diagnostic ignored "-Wpsabi"

typedef float hrtem_v8 __attribute__((vector_size(32)));
typedef int hrtem_i8 __attribute__((vector_size(32)));
typedef float hrtem_v16 __attribute__((vector_size(64)));
typedef int hrtem_i16 __attribute__((vector_size(64)));

#define HRTEM_CONV_ARGS const float *in, long inCount, long pplane, long pw, float *out, long outCount, long plane, \
    long w, long k, long d, const float *weights, const float *bias, int accumulate, int relu, long y0, long y1
#define HRTEM_CONV_PASS(K, D) in, inCount, pplane, pw, out, outCount, plane, w, K, D, weights, bias, accumulate, relu, y0, y1
#define HRTEM_WEIGHT_ARGS const float *in, long inCount, long pplane, const float *g, long outCount, long plane, \
    long rows, long w, long k, long d, double *totals
#define HRTEM_WEIGHT_PASS(K, D) in, inCount, pplane, g, outCount, plane, rows, w, K, D, totals

/* Rows of a band: its zero-bordered copy of `channels` planes (rows of pw floats, plus 2 pad
 * halo rows) should stay within about 256 KiB, in the core's L2 beside the rows it produces;
 * at least 4 rows so the halo is not copied more often than the band. */
static long band_rows(long channels, long pw, long pad, long h) {
    long rows = 65536 / (channels * pw) - 2 * pad;
    if (rows < 4) rows = 4;
    return rows < h ? rows : h;
}

/* A per-thread buffer of at least `floats` (kept for the thread's life, freed when it ends), so
 * the banded kernels allocate nothing per call. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static __thread float *scratch_block;
static __thread long scratch_capacity;
static void make_scratch_key(void) { pthread_key_create(&scratch_key, free); }
static float *thread_scratch(long floats) {
    if (floats > scratch_capacity) {
        pthread_once(&scratch_once, make_scratch_key);
        free(scratch_block);
        scratch_block = malloc(floats * sizeof(float));
        if (!scratch_block) abort();
        scratch_capacity = floats;
        pthread_setspecific(scratch_key, scratch_block);
    }
    return scratch_block;
}

#define VARIANT(name) generic_##name
#include "kernels_impl.inc"
#undef VARIANT

#if defined(__x86_64__)
#pragma clang attribute push (__attribute__((target("avx2,fma"))), apply_to = function)
#define VARIANT(name) avx2_##name
#include "kernels_impl.inc"
#undef VARIANT
#pragma clang attribute pop

#pragma clang attribute push (__attribute__((target("avx512f,avx512vl,avx2,fma,evex512"))), apply_to = function)
#define VARIANT(name) avx512_##name
#define HRTEM_WIDE_REGISTERS 1
#include "kernels_impl.inc"
#undef HRTEM_WIDE_REGISTERS
#undef VARIANT
#pragma clang attribute pop

/* The best instruction set the CPU has: 2 AVX-512VL, 1 AVX2+FMA, 0 generic; -1 until first asked.
 * Every thread computes the same value, so a race on the first call is harmless. */
static int best = -1;

int hrtem_kernels_best_level(void) {
    int known = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (known >= 0) return known;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) known = 2;
    else known = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    __atomic_store_n(&best, known, __ATOMIC_RELAXED);
    return known;
}

/* A level above what the CPU has falls back to the best it has rather than faulting. */
#define DISPATCH(name, ...) do { int top = hrtem_kernels_best_level(), use = level < top ? level : top; \
    if (use == 2) { avx512_##name(__VA_ARGS__); return; } \
    if (use == 1) { avx2_##name(__VA_ARGS__); return; } generic_##name(__VA_ARGS__); } while (0)
#define DISPATCH_RETURN(name, ...) do { int top = hrtem_kernels_best_level(), use = level < top ? level : top; \
    if (use == 2) return avx512_##name(__VA_ARGS__); \
    if (use == 1) return avx2_##name(__VA_ARGS__); return generic_##name(__VA_ARGS__); } while (0)
#else
int hrtem_kernels_best_level(void) { return 0; }
#define DISPATCH(name, ...) do { (void)level; generic_##name(__VA_ARGS__); } while (0)
#define DISPATCH_RETURN(name, ...) do { (void)level; return generic_##name(__VA_ARGS__); } while (0)
#endif

void hrtem_conv_image(int level, const float *in, long inCount, const float *low, long lowCount, float *out, long outCount,
                      long h, long w, long k, long d, const float *weights, const float *bias, int accumulate, int relu,
                      const float *pointWeights, const float *pointBias, float *pointOut, long pointCount) {
    DISPATCH(conv_image, in, inCount, low, lowCount, out, outCount, h, w, k, d, weights, bias, accumulate, relu,
             pointWeights, pointBias, pointOut, pointCount);
}
void hrtem_conv_backward_image(int level, const float *in, long inCount, const float *g, long outCount, long h, long w, long k,
                               long d, double *totals, const float *backWeights, float *gradIn, int accumulate,
                               const float *pointG, long pointCount, double *pointTotals, const float *pointBackWeights) {
    DISPATCH(conv_backward_image, in, inCount, g, outCount, h, w, k, d, totals, backWeights, gradIn, accumulate,
             pointG, pointCount, pointTotals, pointBackWeights);
}
void hrtem_pointwise(int level, const float *x, long inCount, float *out, long outCount, long plane,
                     const float *w, const float *bias, int accumulate, int relu) {
    DISPATCH(pointwise, x, inCount, out, outCount, plane, w, bias, accumulate, relu);
}
void hrtem_pointwise_weight_gradient(int level, const float *x, long inCount, const float *g, long outCount, long plane,
                                     double *totals) {
    DISPATCH(pointwise_weight_gradient, x, inCount, g, outCount, plane, totals);
}
double hrtem_blocked_sum(int level, const float *p, long n) { DISPATCH_RETURN(blocked_sum, p, n); }
void hrtem_moments(int level, const float *p, long n, double *sums) { DISPATCH(moments, p, n, sums); }
void hrtem_bn_backward_sums(int level, float *g, const float *activation, const float *x, float mean, long n, double *sums) {
    DISPATCH(bn_backward_sums, g, activation, x, mean, n, sums);
}
void hrtem_affine(int level, const float *x, float a, float b, const float *residual, int relu, float *out, long n) {
    DISPATCH(affine, x, a, b, residual, relu, out, n);
}
void hrtem_bn_backward_apply(int level, const float *g, const float *x, float a, float c, float k, float *out, long n) {
    DISPATCH(bn_backward_apply, g, x, a, c, k, out, n);
}
double hrtem_softmax_cross_entropy(int level, const float *logits, long k, long n, const unsigned char *labels,
                                   float *grad, float scale) {
    DISPATCH_RETURN(softmax_cross_entropy, logits, k, n, labels, grad, scale);
}
