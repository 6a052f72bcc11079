/* norm.c — fast CPU GroupNorm (+ fused SiLU) and LayerNorm, OpenMP over groups / rows.
 *
 * Statistics are two-pass (mean, then the mean of squared deviations) accumulated in double, so they
 * stay accurate for large offsets and long groups (SD GroupNorm groups hold up to 10*64*64 = 40960
 * values); PyTorch float32 agrees to ~1e-6 relative. Normalisation is y = (x - mean)*s + beta with
 * s = rstd*gamma per channel. (PyTorch's CPU kernel folds the mean into the shift, x*s + (beta - mean*s),
 * which loses digits when |mean| >> std; subtracting first is the more accurate of the two.)
 */
#include <math.h>

#include "kbase.h"     // defines: LS_ASSERT
#include "norm_span.h" // defines: norm_moments, norm_affine_span, norm_layernorm_row (shared)
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"       // defines: the ops' semantics (OpTable), op_conv2d_out
#include "vecmath.h"   // defines: v8f, v4d, v8_sigmoid, LS_CLONES

/* mean and 1/sqrt(var + eps) of n floats (biased variance). Both passes accumulate in 4 double lanes of
 * 8-float steps (the scalar double sums were latency-bound: ~4 cycles a value). */
LS_CLONES void norm_moments(const float *x, size_t n, float eps, double *mean_out, double *rstd_out) {
    size_t n8 = n & ~(size_t)7;
    v4d acc = {0.0, 0.0, 0.0, 0.0};
    for (size_t i = 0; i < n8; i += 8) acc += v8_widen_sum(v8_load(x + i));
    double sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (size_t i = n8; i < n; i++) sum += x[i];
    double mean = sum / (double)n, ss = 0.0;
    v4d m4 = {mean, mean, mean, mean}, sq = {0.0, 0.0, 0.0, 0.0};
    for (size_t i = 0; i < n8; i += 8) {
        v8f v = v8_load(x + i);
        v4d lo = __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), v4d) - m4;
        v4d hi = __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), v4d) - m4;
        sq += lo * lo + hi * hi;
    }
    ss = (sq[0] + sq[1]) + (sq[2] + sq[3]);
    for (size_t i = n8; i < n; i++) {
        double d = x[i] - mean;
        ss += d * d;
    }
    *mean_out = mean;
    *rstd_out = 1.0 / sqrt(ss / (double)n + eps);
}

/* y (n) = (x - m)*s + t, then silu if asked, 8 lanes at a time */
LS_CLONES void norm_affine_span(float *y, const float *x, int n, float m, float s, float t, int silu) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v = (v8_load(x + i) - m) * s + t;
        v8_store(y + i, silu ? v * v8_sigmoid(v) : v);
    }
    if (i < n) {
        v8f v = (v8_load_part(x + i, n - i, 0.0f) - m) * s + t;
        v8_store_part(y + i, silu ? v * v8_sigmoid(v) : v, n - i);
    }
}

/* x (B,C,HW) → y (B,C,HW); G groups of C/G consecutive channels; gamma, beta (C). The training forward
 * (norm_bwd.c) also keeps each (batch, group)'s mean and rstd as float; here they may be NULL. */
void op_groupnorm_fwd_stats_cpu(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                const float *beta, int B, int C, int HW, int G, float eps, int silu) {
    LS_ASSERT(G > 0 && C % G == 0);
    int cg = C / G; /* channels per group; a group is cg*HW contiguous values */
#pragma omp parallel for schedule(dynamic, 1)
    for (int bg = 0; bg < B * G; bg++) {
        int g = bg % G;
        size_t off = (size_t)bg * cg * HW;
        double m, r;
        norm_moments(x + off, (size_t)cg * HW, eps, &m, &r);
        if (mean) mean[bg] = (float)m, rstd[bg] = (float)r;
        for (int j = 0; j < cg; j++) {
            int c = g * cg + j;
            norm_affine_span(y + off + (size_t)j * HW, x + off + (size_t)j * HW, HW, (float)m,
                             (float)(r * gamma[c]), beta[c], silu);
        }
    }
}

void op_groupnorm_cpu(float *y, const float *x, const float *gamma, const float *beta, int B, int C, int HW,
                  int G, float eps, int silu) {
    op_groupnorm_fwd_stats_cpu(y, NULL, NULL, x, gamma, beta, B, C, HW, G, eps, silu);
}

/* one row: y (D) = (x - m)·rs·gamma + beta */
LS_CLONES void norm_layernorm_row(float *y, const float *x, const float *gamma, const float *beta, int D,
                                    float m, float rs) {
    int i = 0;
    for (; i + 8 <= D; i += 8)
        v8_store(y + i, (v8_load(x + i) - m) * rs * v8_load(gamma + i) + v8_load(beta + i));
    for (; i < D; i++) y[i] = (x[i] - m) * rs * gamma[i] + beta[i];
}

/* x (N,D) → y (N,D), normalised over D; gamma, beta (D). */
void op_layernorm_cpu(float *y, const float *x, const float *gamma, const float *beta, int N, int D,
                  float eps) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * D;
        float *yr = y + (size_t)r * D;
        double mean, rstd;
        norm_moments(xr, (size_t)D, eps, &mean, &rstd);
        norm_layernorm_row(yr, xr, gamma, beta, D, (float)mean, (float)rstd);
    }
}
