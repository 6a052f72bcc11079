/* vecmath.h — 8-lane float helpers for the CPU kernels (private to kernels/cpu).
 *
 * Written with GCC vector extensions, not intrinsics: the same source compiles to two SSE2 halves in a
 * baseline build and to single AVX2/FMA instructions inside functions marked LS_CLONES, which GCC builds
 * twice and picks between at load time (ifunc) — the project builds with plain -O2, no -march.
 * libm's scalar expf/erff calls cost more than the arithmetic around them in softmax, SiLU and GELU.
 */
#ifndef LS_VECMATH_H
#define LS_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* GCC warns (at every use) that 32-byte vector arguments change the ABI without AVX; these helpers are
 * always inlined, so no such call exists. Only kernels/cpu files include this header. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* Compile the marked function for AVX2+FMA (x86-64-v3) and for the baseline; run the best the CPU has. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LS_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define LS_CLONES
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

#define V8_INLINE static inline __attribute__((always_inline))

V8_INLINE v8f v8_load(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
V8_INLINE void v8_store(float *p, v8f v) { memcpy(p, &v, sizeof v); }
V8_INLINE v8f v8_splat(float x) { return (v8f){x, x, x, x, x, x, x, x}; }
/* lanes [0, n) of p, the others = fill (n < 8): tails go through the same vector code */
V8_INLINE v8f v8_load_part(const float *p, int n, float fill) {
    v8f v = v8_splat(fill);
    for (int i = 0; i < n; i++) v[i] = p[i];
    return v;
}
V8_INLINE void v8_store_part(float *p, v8f v, int n) {
    for (int i = 0; i < n; i++) p[i] = v[i];
}
/* mask ? a : b per lane, mask lanes all-ones or zero (a vector comparison's result) */
V8_INLINE v8f v8_select(v8i mask, v8f a, v8f b) { return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask)); }
V8_INLINE v8f v8_max(v8f a, v8f b) { return v8_select(a > b, a, b); }
V8_INLINE float v8_hmax(v8f v) {
    float m = v[0];
    for (int i = 1; i < 8; i++) m = v[i] > m ? v[i] : m;
    return m;
}
/* the 8 lanes widened to double and added pairwise into a 4-lane double accumulator */
V8_INLINE v4d v8_widen_sum(v8f v) {
    v4f lo = __builtin_shufflevector(v, v, 0, 1, 2, 3), hi = __builtin_shufflevector(v, v, 4, 5, 6, 7);
    return __builtin_convertvector(lo, v4d) + __builtin_convertvector(hi, v4d);
}

/* exp(x) for x <= 0 (NaN propagates): x = n·ln2 + r with |r| <= ln2/2, exp(r) by its degree-7 Taylor
 * polynomial (truncation < 1e-8 relative, ~1 ulp overall), times 2^n built in the exponent bits.
 * Below -87.3 the true value is < 2^-126 (denormal) and 0 is returned. */
V8_INLINE v8f v8_exp_nonpos(v8f x) {
    const v8f lo = v8_splat(-87.3f), shifter = v8_splat(12582912.0f); /* 1.5·2^23: + it rounds to int */
    v8i tiny = x < lo;
    v8f xc = v8_select(tiny, lo, x);
    v8f t = xc * 1.44269504088896341f + shifter; /* low mantissa bits of t hold n = round(x·log2 e) */
    v8f n = t - shifter;
    /* ln2 = 0.693145751953125 (exact in 16 bits, so n·that is exact) + 1.42860682e-6 */
    v8f r = (xc - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
    v8f p = v8_splat(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    v8i e = ((v8i)t - 0x4B400000 + 127) << 23; /* (n + 127) << 23 is 2^n; n >= -126 after the clamp */
    return v8_select(tiny, v8_splat(0.0f), p * (v8f)e);
}

/* 1 / (1 + exp(-x)) with exp of -|x| only (never overflows): e = exp(-|x|) ∈ (0, 1],
 * sigmoid = 1/(1+e) for x >= 0, e/(1+e) for x < 0 (the same value, without cancellation). */
V8_INLINE v8f v8_sigmoid(v8f x) {
    v8i neg = x < 0.0f;
    v8f e = v8_exp_nonpos(v8_select(neg, x, -x));
    v8f inv = 1.0f / (1.0f + e);
    return v8_select(neg, e * inv, inv);
}

/* Φ(x) = ½ erfc(-x/√2), the standard normal CDF, for the exact (erf) GELU x·Φ(x). With a = |x|/√2,
 * erfc(a) = e^(-a²) · t·P(t), t = 1/(1 + a/2), P a degree-9 polynomial fitted (relative-error minimax,
 * IRLS, by us) to erfc(a)·e^(a²)/t on a ∈ [0, 9.3]; fit error 2e-8. Φ = 1 - ½erfc(a) for x >= 0,
 * ½erfc(a) for x < 0, so the negative tail keeps its relative accuracy (libm's 0.5·(1 + erf) cancels
 * there). Rounding a² costs ~a²·6e-8 relative in e^(-a²): ~1e-6 at x = -6 where gelu(x) is ~6e-9.
 * *gauss gets that e^(-a²) = e^(-x²/2), i.e. √(2π)·φ(x): the GELU derivative Φ + x·φ needs no second exp. */
V8_INLINE v8f v8_normal_cdf(v8f x, v8f *gauss) {
    v8i neg = x < 0.0f;
    v8f a = v8_select(neg, -x, x) * 0.70710678118654752f;
    v8f t = 1.0f / (1.0f + 0.5f * a);
    v8f p = v8_splat(1.451202296e-02f);
    p = p * t - 1.351512522e-01f;
    p = p * t + 4.563504457e-01f;
    p = p * t - 7.057447433e-01f;
    p = p * t + 4.501757622e-01f;
    p = p * t - 1.133343354e-01f;
    p = p * t + 2.305379957e-01f;
    p = p * t + 2.376212925e-01f;
    p = p * t + 2.829739153e-01f;
    p = p * t + 2.820588350e-01f;
    *gauss = v8_exp_nonpos(-(a * a));
    v8f half_erfc = 0.5f * t * p * *gauss;
    return v8_select(neg, half_erfc, 1.0f - half_erfc);
}

/* exact (erf) GELU, x·Φ(x) */
V8_INLINE v8f v8_gelu(v8f x) {
    v8f gauss;
    return x * v8_normal_cdf(x, &gauss);
}

/* d/dx [x·Φ(x)] = Φ(x) + x·φ(x), φ(x) = e^(-x²/2)/√(2π) */
V8_INLINE v8f v8_gelu_grad(v8f x) {
    v8f gauss, cdf = v8_normal_cdf(x, &gauss);
    return cdf + x * (0.39894228040143268f * gauss);
}

#endif
