/* elementwise_bwd.c — backward of the activations, GEGLU and the per-channel bias add (OpenMP loops).
 *
 * Activation backward takes the forward's *input* x (the activations run in place, so the model keeps
 * the pre-activation) and computes dx = dy · f'(x):
 *   silu(x) = x·σ(x)                     f' = σ(x)·(1 + x·(1 - σ(x)))
 *   gelu(x) = x·Φ(x)  (exact erf)        f' = Φ(x) + x·φ(x),  Φ = ½(1 + erf(x/√2)), φ = e^{-x²/2}/√(2π)
 *   quick_gelu(x) = x·σ(1.702x)          f' = σ(ax) + a·x·σ(ax)·(1 - σ(ax)),  a = 1.702
 * GELU and GEGLU run 8 lanes at a time on vecmath.h's Φ (v8_normal_cdf), whose exponential also gives φ:
 * with libm's erff and expf per element the GEGLU backward cost 8-10x its forward (BENCHMARKS.md).
 * Loops shorter than OMP_MIN run on one thread.
 */
#include <math.h>

#include "kbase.h"   // defines: LS_MIN
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"     // defines: the ops' semantics (OpTable), op_conv2d_out
#include "vecmath.h" // defines: v8f, v8_normal_cdf, v8_gelu_grad, LS_CLONES

#define OMP_MIN ((size_t)1 << 15)
#define GELU_CHUNK 4096 /* values per task of the GELU backward */

static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

/* dx (n) = dy · gelu'(x); dx may be dy (each 8-lane block is loaded before it is stored) */
LS_CLONES static void gelu_bwd_span(float *dx, const float *dy, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) v8_store(dx + i, v8_load(dy + i) * v8_gelu_grad(v8_load(x + i)));
    if (i < n) {
        int rem = (int)(n - i);
        v8f g = v8_load_part(dy + i, rem, 0.0f) * v8_gelu_grad(v8_load_part(x + i, rem, 0.0f));
        v8_store_part(dx + i, g, rem);
    }
}

/* 8 lanes of GEGLU's backward: da = dy·g·Φ(g), dg = dy·a·(Φ(g) + g·φ(g)) */
V8_INLINE void geglu_grad8(v8f dy, v8f a, v8f g, v8f *da, v8f *dg) {
    v8f gauss, cdf = v8_normal_cdf(g, &gauss);
    *da = dy * g * cdf;
    *dg = dy * a * (cdf + g * (0.39894228040143268f * gauss));
}

LS_CLONES static void geglu_bwd_row(float *da, float *dg, const float *dy, const float *a, const float *g,
                                    int D) {
    int d = 0;
    v8f ra, rg;
    for (; d + 8 <= D; d += 8) {
        geglu_grad8(v8_load(dy + d), v8_load(a + d), v8_load(g + d), &ra, &rg);
        v8_store(da + d, ra), v8_store(dg + d, rg);
    }
    if (d < D) { /* the tail through the same code (padding lanes are 0) */
        int rem = D - d;
        geglu_grad8(v8_load_part(dy + d, rem, 0.0f), v8_load_part(a + d, rem, 0.0f),
                    v8_load_part(g + d, rem, 0.0f), &ra, &rg);
        v8_store_part(da + d, ra, rem), v8_store_part(dg + d, rg, rem);
    }
}

void op_silu_backward_cpu(float *dx, const float *dy, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float s = sigmoidf(x[i]);
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void op_gelu_backward_cpu(float *dx, const float *dy, const float *x, size_t n) {
    size_t nc = (n + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t c = 0; c < nc; c++) {
        size_t i = c * GELU_CHUNK;
        gelu_bwd_span(dx + i, dy + i, x + i, LS_MIN((size_t)GELU_CHUNK, n - i));
    }
}

void op_quick_gelu_backward_cpu(float *dx, const float *dy, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float s = sigmoidf(1.702f * x[i]);
        dx[i] = dy[i] * (s + 1.702f * x[i] * s * (1.0f - s));
    }
}

/* y = a·gelu(g), a = x[:, :D], g = x[:, D:]:  da = dy·gelu(g),  dg = dy·a·gelu'(g). */
void op_geglu_backward_cpu(float *dx, const float *dy, const float *x, int N, int D) {
#pragma omp parallel for schedule(static) if ((size_t)N * D >= OMP_MIN)
    for (int r = 0; r < N; r++) {
        const float *a = x + (size_t)r * 2 * D;
        float *da = dx + (size_t)r * 2 * D;
        geglu_bwd_row(da, da + D, dy + (size_t)r * D, a, a + D, D);
    }
}

/* y[b,c,:] += v[b,c]  ⇒  dv[b,c] += Σ_hw dy[b,c,hw] (dy itself flows on to y's input unchanged). */
void op_add_channel_bias_backward_cpu(float *dv, const float *dy, int B, int C, int HW) {
#pragma omp parallel for schedule(static) if ((size_t)B * C * HW >= OMP_MIN)
    for (int bc = 0; bc < B * C; bc++) {
        const float *p = dy + (size_t)bc * HW;
        double acc = 0.0;
        for (int i = 0; i < HW; i++) acc += p[i];
        dv[bc] += (float)acc;
    }
}
