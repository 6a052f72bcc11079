/* norm.c — fast CPU GroupNorm (+ fused SiLU) and LayerNorm, OpenMP over groups / rows.
 *
 * Statistics are two-pass (mean, then the mean of squared deviations) accumulated in double, so they
 * stay accurate for large offsets and long groups (SD GroupNorm groups hold up to 10*64*64 = 40960
 * values); PyTorch float32 agrees to ~1e-6 relative. Normalisation is y = (x - mean)*s + beta with
 * s = rstd*gamma per channel. (PyTorch's CPU kernel folds the mean into the shift, x*s + (beta - mean*s),
 * which loses digits when |mean| >> std; subtracting first is the more accurate of the two.)
 */
#include <math.h>

#include "common.h" // defines: LS_ASSERT
#include "ops.h"    // defines: op_groupnorm, op_layernorm

/* mean and 1/sqrt(var + eps) of n floats (biased variance) */
static void moments(const float *x, size_t n, float eps, double *mean_out, double *rstd_out) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    double mean = sum / (double)n, ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - mean;
        ss += d * d;
    }
    *mean_out = mean;
    *rstd_out = 1.0 / sqrt(ss / (double)n + eps);
}

/* x (B,C,HW) → y (B,C,HW); G groups of C/G consecutive channels; gamma, beta (C). */
void op_groupnorm(float *y, const float *x, const float *gamma, const float *beta, int B, int C, int HW,
                  int G, float eps, int silu) {
    LS_ASSERT(G > 0 && C % G == 0);
    int cg = C / G; /* channels per group; a group is cg*HW contiguous values */
#pragma omp parallel for schedule(dynamic, 1)
    for (int bg = 0; bg < B * G; bg++) {
        int g = bg % G;
        size_t off = (size_t)bg * cg * HW;
        double mean, rstd;
        moments(x + off, (size_t)cg * HW, eps, &mean, &rstd);
        for (int j = 0; j < cg; j++) {
            int c = g * cg + j;
            float m = (float)mean, s = (float)(rstd * gamma[c]), t = beta[c];
            const float *xc = x + off + (size_t)j * HW;
            float *yc = y + off + (size_t)j * HW;
            if (silu) {
                for (int i = 0; i < HW; i++) {
                    float v = (xc[i] - m) * s + t;
                    yc[i] = v / (1.0f + expf(-v));
                }
            } else {
                for (int i = 0; i < HW; i++) yc[i] = (xc[i] - m) * s + t;
            }
        }
    }
}

/* x (N,D) → y (N,D), normalised over D; gamma, beta (D). */
void op_layernorm(float *y, const float *x, const float *gamma, const float *beta, int N, int D,
                  float eps) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * D;
        float *yr = y + (size_t)r * D;
        double mean, rstd;
        moments(xr, (size_t)D, eps, &mean, &rstd);
        float m = (float)mean, rs = (float)rstd;
        for (int i = 0; i < D; i++) yr[i] = (xr[i] - m) * rs * gamma[i] + beta[i];
    }
}
