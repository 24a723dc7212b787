#include "hrtem_kernels.h"
#include <string.h>

/* The generic variant passes 8-lane vectors between always-inlined helpers only. */
#pragma clang diagnostic ignored "-Wpsabi"

typedef float hrtem_v8 __attribute__((vector_size(32)));
typedef int hrtem_i8 __attribute__((vector_size(32)));

#define HRTEM_CONV_ARGS const float *in, long inCount, float *out, long outCount, long h, long w, long k, long d, \
    const float *weights, const float *bias, int accumulate, int relu, long y0, long y1
#define HRTEM_CONV_PASS(K) in, inCount, out, outCount, h, w, K, d, weights, bias, accumulate, relu, y0, y1
#define HRTEM_WEIGHT_ARGS const float *in, long inCount, const float *g, long outCount, long h, long w, long k, long d, double *totals
#define HRTEM_WEIGHT_PASS(K) in, inCount, g, outCount, h, w, K, d, totals

#define VARIANT(name) generic_##name
#include "kernels_impl.inc"
#undef VARIANT

#if defined(__x86_64__)
#pragma clang attribute push (__attribute__((target("avx2,fma"))), apply_to = function)
#define VARIANT(name) avx2_##name
#include "kernels_impl.inc"
#undef VARIANT
#pragma clang attribute pop

static int has_avx2(void) {
    static int known = -1;
    if (known < 0) { __builtin_cpu_init(); known = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
    return known;
}
#define DISPATCH(name, ...) do { if (has_avx2()) { avx2_##name(__VA_ARGS__); return; } generic_##name(__VA_ARGS__); } while (0)
#define DISPATCH_RETURN(name, ...) do { if (has_avx2()) return avx2_##name(__VA_ARGS__); return generic_##name(__VA_ARGS__); } while (0)
#else
#define DISPATCH(name, ...) generic_##name(__VA_ARGS__)
#define DISPATCH_RETURN(name, ...) return generic_##name(__VA_ARGS__)
#endif

void hrtem_conv_rows(HRTEM_CONV_ARGS) { DISPATCH(conv_rows, HRTEM_CONV_PASS(k)); }
void hrtem_conv_weight_rows(HRTEM_WEIGHT_ARGS) { DISPATCH(conv_weight_rows, HRTEM_WEIGHT_PASS(k)); }
void hrtem_pointwise(const float *x, long inCount, float *out, long outCount, long plane,
                     const float *w, const float *bias, int accumulate, int relu) {
    DISPATCH(pointwise, x, inCount, out, outCount, plane, w, bias, accumulate, relu);
}
void hrtem_pointwise_weight_gradient(const float *x, long inCount, const float *g, long outCount, long plane,
                                     double *totals) {
    DISPATCH(pointwise_weight_gradient, x, inCount, g, outCount, plane, totals);
}
void hrtem_relu_mask(float *g, const float *a, long n) { DISPATCH(relu_mask, g, a, n); }
double hrtem_blocked_sum(const float *p, long n) { DISPATCH_RETURN(blocked_sum, p, n); }
