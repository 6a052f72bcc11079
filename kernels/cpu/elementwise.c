/* elementwise.c — fast CPU activations, adds and the timestep embedding (OpenMP loops).
 *
 * Loops shorter than OMP_MIN run on one thread: waking the team costs more than the work.
 */
#include <math.h>
#include <omp.h>

#include "ops.h" // defines: the elementwise prototypes

#define OMP_MIN ((size_t)1 << 15)

int op_num_threads(void) { return omp_get_max_threads(); }

/* == F.silu: x * sigmoid(x) */
void op_silu_inplace(float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

/* exact GELU, == F.gelu(approximate="none"): 0.5 x (1 + erf(x/√2)) */
static inline float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

void op_gelu_inplace(float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t i = 0; i < n; i++) x[i] = gelu_erf(x[i]);
}

/* CLIP's quick_gelu: x * sigmoid(1.702 x) */
void op_quick_gelu_inplace(float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

/* x (N, 2D) → y (N, D): y = value * gelu(gate), value = x[:, :D], gate = x[:, D:] (diffusers GEGLU order) */
void op_geglu(float *y, const float *x, int N, int D) {
#pragma omp parallel for schedule(static) if ((size_t)N * D >= OMP_MIN)
    for (int r = 0; r < N; r++) {
        const float *a = x + (size_t)r * 2 * D, *g = a + D;
        float *yr = y + (size_t)r * D;
        for (int d = 0; d < D; d++) yr[d] = a[d] * gelu_erf(g[d]);
    }
}

void op_add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* y (B,C,HW) += v (B,C) broadcast over HW */
void op_add_channel_bias(float *y, const float *v, int B, int C, int HW) {
#pragma omp parallel for schedule(static) if ((size_t)B * C * HW >= OMP_MIN)
    for (int bc = 0; bc < B * C; bc++) {
        float *yc = y + (size_t)bc * HW, add = v[bc];
        for (int i = 0; i < HW; i++) yc[i] += add;
    }
}

/* emb (B,dim) = [cos(t·f_k), sin(t·f_k)], k < half = dim/2, == diffusers get_timestep_embedding with
 * flip_sin_to_cos=True, scale=1, max_period=10000. Each step is rounded to float in the source's order:
 * e = (-ln 10000)·k; e = e / (half - shift); f = exp(e); arg = t·f. */
void op_timestep_embedding(float *emb, const float *t, int B, int dim, float shift) {
    int half = dim / 2;
    const float neg_log_period = (float)(-log(10000.0));
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < half; k++) {
            float e = neg_log_period * (float)k;
            e = e / ((float)half - shift);
            float arg = t[b] * expf(e);
            emb[(size_t)b * dim + k] = cosf(arg);
            emb[(size_t)b * dim + half + k] = sinf(arg);
        }
    }
}
