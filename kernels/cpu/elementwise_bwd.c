/* elementwise_bwd.c — backward of the activations, GEGLU and the per-channel bias add (OpenMP loops).
 *
 * Activation backward takes the forward's *input* x (the activations run in place, so the model keeps
 * the pre-activation) and computes dx = dy · f'(x):
 *   silu(x) = x·σ(x)                     f' = σ(x)·(1 + x·(1 - σ(x)))
 *   gelu(x) = x·Φ(x)  (exact erf)        f' = Φ(x) + x·φ(x),  Φ = ½(1 + erf(x/√2)), φ = e^{-x²/2}/√(2π)
 *   quick_gelu(x) = x·σ(1.702x)          f' = σ(ax) + a·x·σ(ax)·(1 - σ(ax)),  a = 1.702
 * Loops shorter than OMP_MIN run on one thread.
 */
#include <math.h>

#include "ops.h" // defines: the elementwise backward prototypes

#define OMP_MIN ((size_t)1 << 15)

static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

/* d/dx [x·Φ(x)] */
static inline float gelu_grad(float x) {
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * x * x); /* 1/√(2π) · e^{-x²/2} */
    return cdf + x * pdf;
}

void op_silu_backward(float *dx, const float *dy, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float s = sigmoidf(x[i]);
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void op_gelu_backward(float *dx, const float *dy, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * gelu_grad(x[i]);
}

void op_quick_gelu_backward(float *dx, const float *dy, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float s = sigmoidf(1.702f * x[i]);
        dx[i] = dy[i] * (s + 1.702f * x[i] * s * (1.0f - s));
    }
}

/* y = a·gelu(g), a = x[:, :D], g = x[:, D:]:  da = dy·gelu(g),  dg = dy·a·gelu'(g). */
void op_geglu_backward(float *dx, const float *dy, const float *x, int N, int D) {
#pragma omp parallel for schedule(static) if ((size_t)N * D >= OMP_MIN)
    for (int r = 0; r < N; r++) {
        const float *a = x + (size_t)r * 2 * D, *g = a + D, *dyr = dy + (size_t)r * D;
        float *da = dx + (size_t)r * 2 * D, *dg = da + D;
        for (int d = 0; d < D; d++) {
            float cdf = 0.5f * (1.0f + erff(g[d] * 0.70710678118654752f));
            float pdf = 0.39894228040143268f * expf(-0.5f * g[d] * g[d]);
            da[d] = dyr[d] * g[d] * cdf;
            dg[d] = dyr[d] * a[d] * (cdf + g[d] * pdf);
        }
    }
}

/* y[b,c,:] += v[b,c]  ⇒  dv[b,c] += Σ_hw dy[b,c,hw] (dy itself flows on to y's input unchanged). */
void op_add_channel_bias_backward(float *dv, const float *dy, int B, int C, int HW) {
#pragma omp parallel for schedule(static) if ((size_t)B * C * HW >= OMP_MIN)
    for (int bc = 0; bc < B * C; bc++) {
        const float *p = dy + (size_t)bc * HW;
        double acc = 0.0;
        for (int i = 0; i < HW; i++) acc += p[i];
        dv[bc] += (float)acc;
    }
}
